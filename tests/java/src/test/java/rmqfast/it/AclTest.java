package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

import org.apache.rocketmq.acl.common.AclClientRPCHook;
import org.apache.rocketmq.acl.common.SessionCredentials;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.PlainAccessConfig;
import org.apache.rocketmq.common.TopicConfig;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.protocol.body.ClusterAclVersionInfo;
import org.apache.rocketmq.remoting.RPCHook;
import org.apache.rocketmq.remoting.netty.NettyClientConfig;
import org.apache.rocketmq.remoting.netty.NettyRemotingClient;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * RocketMQ 4.x plain ACL (aclEnable=true) with the official client's AclClientRPCHook: allowed and refused
 * requests with RocketMQ's code (SYSTEM_ERROR, 1) and AclException remark, reload on edit, white addresses,
 * admin-only codes, and the mqadmin ACL commands through DefaultMQAdminExt.
 */
@ExtendWith(RmqFastExtension.class)
class AclTest {
    static final String ACL = String.join("\n",
        "accounts:",
        "  - accessKey: producer1",
        "    secretKey: producer-secret",
        "    defaultTopicPerm: DENY",
        "    defaultGroupPerm: SUB",
        "    topicPerms:",
        "      - orders=PUB",
        "      - audit=SUB",
        "      - closed=DENY",
        "  - accessKey: consumer1",
        "    secretKey: consumer-secret",
        "    defaultTopicPerm: DENY",
        "    defaultGroupPerm: SUB",
        "    topicPerms:",
        "      - orders=SUB",
        "  - accessKey: aclAdmin1",
        "    secretKey: admin-secret",
        "    admin: true",
        "");

    static RPCHook hook(String accessKey, String secretKey) {
        return new AclClientRPCHook(new SessionCredentials(accessKey, secretKey));
    }

    /** Writes conf/plain_acl.yml under a fresh ROCKETMQ_HOME and starts a name server and an ACL broker. */
    static RmqFast.Proc start(RmqFast rmq, String acl) {
        Path home = rmq.workDir().resolve("rocketmq-home");
        write(home.resolve("conf").resolve("plain_acl.yml"), acl);
        rmq.startNamesrv();
        return rmq.startBroker("broker-a", "aclEnable", "true", "rocketmqHome", home.toString());
    }

    static void write(Path file, String text) {
        try {
            Files.createDirectories(file.getParent());
            Path tmp = file.resolveSibling(file.getFileName() + ".new");
            Files.writeString(tmp, text);
            Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static DefaultMQProducer producer(RmqFast rmq, String group, RPCHook hook) throws Exception {
        DefaultMQProducer p = rmq.tune(hook == null ? new DefaultMQProducer(group) : new DefaultMQProducer(group, hook));
        p.setSendMsgTimeout(5_000);
        p.setRetryTimesWhenSendFailed(0);
        p.start();
        rmq.closeLater(p::shutdown);
        return p;
    }

    static DefaultMQAdminExt admin(RmqFast rmq, RPCHook hook) throws Exception {
        DefaultMQAdminExt admin = rmq.tune(new DefaultMQAdminExt(hook));
        admin.start();
        rmq.closeLater(admin::shutdown);
        return admin;
    }

    /**
     * The broker's refusal as the client sees it: SYSTEM_ERROR (1) is one of the producer's retry codes, so the
     * send ends in an MQClientException carrying code 1 whose cause is the broker's MQBrokerException with the
     * AclException remark.
     */
    static void assertRefused(DefaultMQProducer p, String topic, String remarkPart) {
        MQClientException e = assertThrows(MQClientException.class,
            () -> p.send(RmqFast.message(topic, null, "refused")));
        assertEquals(1, e.getResponseCode(), e.toString());
        assertTrue(e.getCause() instanceof MQBrokerException, e.toString());
        MQBrokerException broker = (MQBrokerException) e.getCause();
        assertEquals(1, broker.getResponseCode(), broker.toString());
        assertTrue(broker.getErrorMessage().startsWith("org.apache.rocketmq.acl.common.AclException: "),
            broker.getErrorMessage());
        assertTrue(broker.getErrorMessage().contains(remarkPart), broker.getErrorMessage());
    }

    @Test
    @Timeout(60)
    void signedClientsPermissionsReloadAndWhiteAddresses(RmqFast rmq) throws Exception {
        RmqFast.Proc broker = start(rmq, ACL);
        DefaultMQProducer producer = producer(rmq, "pgAcl", hook("producer1", "producer-secret"));
        RmqFast.assertSendOk("allowed", producer.send(RmqFast.message("orders", null, "allowed")));
        // The consumer's first rebalance needs the route (the send auto-created the topic).
        SqlFilterTest.awaitRoute(producer, "orders");

        Received got = new Received("orders");
        DefaultMQPushConsumer consumer = rmq.tune(new DefaultMQPushConsumer("cgAcl",
            hook("consumer1", "consumer-secret"), new AllocateMessageQueueAveragely()));
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe("orders", "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            msgs.forEach(got::add);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        rmq.closeLater(consumer::shutdown);
        got.awaitAll(List.of("allowed"), Duration.ofSeconds(20));

        assertRefused(producer, "audit", "No default permission for topic:audit");
        assertRefused(producer, "closed", "No default permission for topic:closed");
        assertRefused(producer, "unlisted", "No default permission for topic:unlisted");
        assertRefused(producer(rmq, "pgWrong", hook("producer1", "not-the-secret")), "orders",
            "Check signature failed for accessKey=producer1");
        assertRefused(producer(rmq, "pgGhost", hook("ghostKey1", "ghost-secret")), "orders",
            "No acl config for ghostKey1");
        DefaultMQProducer anonymous = producer(rmq, "pgAnon", null);
        assertRefused(anonymous, "orders", "No accessKey is configured");

        // Admin-only request code from a non-admin account.
        DefaultMQAdminExt notAdmin = admin(rmq, hook("producer1", "producer-secret"));
        MQClientException denied = assertThrows(MQClientException.class,
            () -> notAdmin.createAndUpdateTopicConfig(broker.addr(),
                new TopicConfig("adminOnly", 4, 4, 6)));
        assertEquals(1, denied.getResponseCode(), denied.toString());
        assertTrue(denied.getErrorMessage().contains("Need admin permission for request code=17, but accessKey=producer1 is not"),
            denied.getErrorMessage());

        // Edit the file: audit becomes PUB; the broker reloads.
        Path file = rmq.workDir().resolve("rocketmq-home/conf/plain_acl.yml");
        write(file, ACL.replace("audit=SUB", "audit=PUB"));
        RmqFast.awaitUntil(Duration.ofSeconds(15), () -> sends(producer, "audit"), () -> "reload: audit=PUB");
        assertRefused(anonymous, "orders", "No accessKey is configured");
        // 127.0.0.1 as a global white address: no credentials needed.
        write(file, ACL + "globalWhiteRemoteAddresses:\n  - 127.0.0.1\n");
        RmqFast.awaitUntil(Duration.ofSeconds(15), () -> sends(anonymous, "orders"), () -> "reload: white address");

        // A broken file keeps the previous ACL in force.
        write(file, "accounts: [\n");
        RmqFast.sleep(2_500);
        RmqFast.assertSendOk("still white", anonymous.send(RmqFast.message("orders", null, "still white")));
    }

    static boolean sends(DefaultMQProducer p, String topic) {
        try {
            p.send(RmqFast.message(topic, null, "probe"));
            return true;
        } catch (Exception e) {
            return false;
        }
    }

    @Test
    @Timeout(60)
    void mqadminAclCommands(RmqFast rmq) throws Exception {
        String addr = start(rmq, ACL).addr();
        DefaultMQAdminExt admin = admin(rmq, hook("aclAdmin1", "admin-secret"));
        ClusterAclVersionInfo before = admin.examineBrokerClusterAclVersionInfo(addr);
        assertEquals(RmqFast.CLUSTER, before.getClusterName());
        assertEquals("broker-a", before.getBrokerName());
        long counter = before.getAclConfigDataVersion().getCounter().get();

        PlainAccessConfig config = new PlainAccessConfig();
        config.setAccessKey("created1");
        config.setSecretKey("created-secret");
        config.setDefaultTopicPerm("DENY");
        config.setTopicPerms(Arrays.asList("fresh=PUB"));
        admin.createAndUpdatePlainAccessConfig(addr, config);
        DefaultMQProducer created = producer(rmq, "pgCreated", hook("created1", "created-secret"));
        RmqFast.assertSendOk("fresh", created.send(RmqFast.message("fresh", null, "fresh")));
        assertRefused(created, "orders", "No default permission for topic:orders");

        ClusterAclVersionInfo after = admin.examineBrokerClusterAclVersionInfo(addr);
        assertEquals(counter + 1, after.getAclConfigDataVersion().getCounter().get());
        String file = Files.readString(rmq.workDir().resolve("rocketmq-home/conf/plain_acl.yml"));
        assertTrue(file.contains("created1") && file.contains("fresh=PUB"), file);

        admin.updateGlobalWhiteAddrConfig(addr, "10.99.0.*");
        file = Files.readString(rmq.workDir().resolve("rocketmq-home/conf/plain_acl.yml"));
        assertTrue(file.contains("10.99.0.*"), file);

        // GET_BROKER_CLUSTER_ACL_CONFIG (54): 4.9.8's admin API no longer sends it, so ask over raw remoting.
        NettyRemotingClient raw = new NettyRemotingClient(new NettyClientConfig());
        raw.registerRPCHook(hook("aclAdmin1", "admin-secret"));
        raw.start();
        rmq.closeLater(raw::shutdown);
        RemotingCommand listing = raw.invokeSync(addr, RemotingCommand.createRequestCommand(54, null), 5_000);
        assertEquals(0, listing.getCode(), listing.toString());
        String json = new String(listing.getBody(), StandardCharsets.UTF_8);
        assertTrue(json.contains("\"globalWhiteAddrs\":[\"10.99.0.*\"]") && json.contains("\"accessKey\":\"created1\""), json);

        MQClientException shortKey = assertThrows(MQClientException.class, () -> {
            PlainAccessConfig bad = new PlainAccessConfig();
            bad.setAccessKey("abc");
            bad.setSecretKey("12345678");
            admin.createAndUpdatePlainAccessConfig(addr, bad);
        });
        assertEquals(209, shortKey.getResponseCode(), shortKey.toString());

        // The ACL commands are admin-only here (RocketMQ 4.9.8 lets any account run them).
        DefaultMQAdminExt notAdmin = admin(rmq, hook("producer1", "producer-secret"));
        MQClientException refused = assertThrows(MQClientException.class,
            () -> notAdmin.deletePlainAccessConfig(addr, "created1"));
        assertEquals(1, refused.getResponseCode(), refused.toString());

        admin.deletePlainAccessConfig(addr, "created1");
        assertRefused(created, "fresh", "No acl config for created1");
        MQClientException gone = assertThrows(MQClientException.class,
            () -> admin.deletePlainAccessConfig(addr, "created1"));
        assertEquals(210, gone.getResponseCode(), gone.toString());
    }

    @Test
    @Timeout(30)
    void invalidAclFileStopsTheStartNamingTheFile(RmqFast rmq) throws Exception {
        Path home = rmq.workDir().resolve("rocketmq-home");
        write(home.resolve("conf/plain_acl.yml"), "accounts:\n  - accessKey: short\n    secretKey: 12345678\n");
        int port = RmqFast.freePort();
        Path conf = rmq.writeProperties("broker-acl-bad", rmq.brokerConfig("broker-acl-bad", port,
            "namesrvAddr", "127.0.0.1:" + RmqFast.freePort(), "aclEnable", "true", "rocketmqHome", home.toString()));
        RmqFast.Proc p = rmq.launch("broker-acl-bad", port, null, List.of("broker", "-c", conf.toString()));
        p.expectExit();
        if (!p.process().waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
            p.kill9();
            throw new AssertionError("broker with an invalid plain_acl.yml was still running after 10 s");
        }
        String stderr = p.stderr();
        assertTrue(p.process().exitValue() != 0, stderr);
        assertTrue(stderr.contains("plain_acl.yml") && stderr.contains("length should longer than 6"), stderr);
    }
}
