package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Controller mode (issue 11) seen through the operators' tool: RocketMQ 5.3.3's own mqadmin (tests/java/mqadmin5,
 * run as a separate JVM so its classes never meet the 4.9.8 client's) against three `rmq-fast controller`
 * processes and a broker group of two brokers in controller mode. getControllerMetaData names the quorum's leader,
 * getControllerConfig / updateControllerConfig read and change each member's enableElectUncleanMaster (black-listed
 * and unknown keys refused), getSyncStateSet shows the master and both replicas in sync, getBrokerEpoch reads the master's epoch history from
 * the broker, and electMaster moves the master to the other broker: the name server then routes brokerId 0 to it
 * and an unmodified 4.9.8 producer's sends are stored there.
 */
@ExtendWith(RmqFastExtension.class)
class ControllerAdminTest {

    private static final Path MQADMIN5_LIB = Paths.get("mqadmin5/lib").toAbsolutePath();

    /** Runs one mqadmin 5.3.3 command; returns what it printed (stdout and stderr). */
    private static String mqadmin5(String... args) {
        List<String> cmd = new ArrayList<>(List.of(Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
            "-Xmx128m", "-Drocketmq.client.logUseSlf4j=false", "-cp", MQADMIN5_LIB + "/*",
            "org.apache.rocketmq.tools.command.MQAdminStartup"));
        cmd.addAll(List.of(args));
        try {
            Path out = Files.createTempFile("mqadmin5", ".out");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile()).start();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("mqadmin " + String.join(" ", args) + " did not finish in 60 s");
            }
            String text = Files.readString(out, StandardCharsets.UTF_8);
            Files.deleteIfExists(out);
            return text;
        } catch (IOException e) {
            throw new AssertionError("cannot run mqadmin 5 (run: mvn -f tests/java/mqadmin5/pom.xml package)", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    private static String field(String output, String name) {
        Matcher m = Pattern.compile("#" + Pattern.quote(name) + "\\s+(\\S+)").matcher(output);
        return m.find() ? m.group(1) : null;
    }

    /** brokerId of the replica at {@code addr} in getSyncStateSet's output, or -1. */
    private static long replicaId(String output, String addr) {
        Matcher m = Pattern.compile("brokerId=(\\d+), brokerAddress='" + Pattern.quote(addr) + "'").matcher(output);
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }

    @Test
    @Timeout(300)
    void mqadmin5ControllerCommandsWork(RmqFast rmq) throws Exception {
        RmqFast.Proc namesrv = rmq.startNamesrv();
        int[] ports = {RmqFast.freePort(), RmqFast.freePort(), RmqFast.freePort()};
        String peers = "n0-127.0.0.1:" + ports[0] + ";n1-127.0.0.1:" + ports[1] + ";n2-127.0.0.1:" + ports[2];
        String controllerAddr = "127.0.0.1:" + ports[0] + ";127.0.0.1:" + ports[1] + ";127.0.0.1:" + ports[2];
        for (int i = 0; i < 3; i++) {
            Map<String, String> conf = new LinkedHashMap<>();
            conf.put("controllerDLegerGroup", "it-controllers");
            conf.put("controllerDLegerPeers", peers);
            conf.put("controllerDLegerSelfId", "n" + i);
            conf.put("controllerStorePath", rmq.workDir().resolve("controller-" + i).toString());
            conf.put("logDir", rmq.workDir().resolve("controller-" + i + "-logs").toString());
            conf.put("configStorePath", rmq.workDir().resolve("controller-" + i + ".properties").toString());
            Path file = rmq.writeProperties("controller-" + i, conf);
            rmq.launch("controller-" + i, ports[i], null, List.of("controller", "-c", file.toString()));
        }
        // Each mqadmin run is a JVM start (seconds on a busy 2-core machine): a generous deadline.
        String[] lastMeta = new String[1];
        RmqFast.awaitUntil(Duration.ofSeconds(90), () -> {
            lastMeta[0] = mqadmin5("getControllerMetaData", "-a", "127.0.0.1:" + ports[0]);
            String leader = field(lastMeta[0], "ControllerLeaderAddress");
            return leader != null && leader.startsWith("127.0.0.1:");
        }, () -> "getControllerMetaData never named a leader: " + lastMeta[0]);
        String meta = mqadmin5("getControllerMetaData", "-a", "127.0.0.1:" + ports[1]);
        assertEquals("it-controllers", field(meta, "ControllerGroup"), meta);
        assertTrue(meta.contains("127.0.0.1:" + ports[2]), "peers listed: " + meta);

        // Controller config, per member as RocketMQ 5.3.3: mqadmin asks every address given.
        String config = mqadmin5("getControllerConfig", "-a", controllerAddr);
        assertEquals(List.of("false", "false", "false"), values(config, "enableElectUncleanMaster"), config);
        String updated = mqadmin5("updateControllerConfig", "-a", controllerAddr,
            "-k", "enableElectUncleanMaster", "-v", "true");
        assertTrue(updated.contains("update controller config success!"), updated);
        config = mqadmin5("getControllerConfig", "-a", controllerAddr);
        assertEquals(List.of("true", "true", "true"), values(config, "enableElectUncleanMaster"), config);
        String black = mqadmin5("updateControllerConfig", "-a", "127.0.0.1:" + ports[0],
            "-k", "configStorePath", "-v", "/tmp/elsewhere");
        assertTrue(black.contains("Can not update config in black list."), black);
        String unknown = mqadmin5("updateControllerConfig", "-a", "127.0.0.1:" + ports[0],
            "-k", "noSuchControllerKey", "-v", "1");
        assertTrue(unknown.contains("unknown controller config key noSuchControllerKey"), unknown);
        config = mqadmin5("getControllerConfig", "-a", "127.0.0.1:" + ports[0]);
        assertFalse(config.contains("noSuchControllerKey"), config);
        assertEquals(List.of("true"), values(config, "enableElectUncleanMaster"), config);
        updated = mqadmin5("updateControllerConfig", "-a", controllerAddr,
            "-k", "enableElectUncleanMaster", "-v", "false");
        assertTrue(updated.contains("update controller config success!"), updated);

        String[] controllerMode = {"enableControllerMode", "true", "controllerAddr", controllerAddr,
            "allAckInSyncStateSet", "true", "brokerRole", "SYNC_MASTER", "flushDiskType", "SYNC_FLUSH"};
        RmqFast.Proc first = rmq.startBrokerAs("broker-a-1", "broker-a",
            with(controllerMode, "haListenPort", String.valueOf(RmqFast.freePort())));
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> first.addr().equals(routeMaster(rmq, namesrv)),
            () -> "the first broker of the group never registered as its master");
        RmqFast.Proc second = rmq.startBrokerAs("broker-a-2", "broker-a",
            with(controllerMode, "haListenPort", String.valueOf(RmqFast.freePort())));

        String[] sss = new String[1];
        RmqFast.awaitUntil(Duration.ofSeconds(60), () -> {
            sss[0] = mqadmin5("getSyncStateSet", "-a", controllerAddr, "-b", "broker-a");
            return "2".equals(field(sss[0], "SyncStateSetNums"));
        }, () -> "the second broker never entered the sync-state set: " + sss[0]);
        assertEquals(first.addr(), field(sss[0], "MasterAddr"), sss[0]);
        long secondId = replicaId(sss[0], second.addr());
        assertTrue(secondId > 0, "second broker's id in " + sss[0]);
        int epochBefore = Integer.parseInt(field(sss[0], "MasterEpoch"));

        String epochs = mqadmin5("getBrokerEpoch", "-n", rmq.namesrvAddr(), "-b", "broker-a");
        assertTrue(epochs.contains("#Epoch: EpochEntry{epoch=" + epochBefore), "master's epoch history: " + epochs);

        String elected = mqadmin5("electMaster", "-a", "127.0.0.1:" + ports[0], "-c", RmqFast.CLUSTER,
            "-bn", "broker-a", "-b", String.valueOf(secondId));
        assertEquals(second.addr(), field(elected, "BrokerMasterAddr"), elected);
        assertEquals(String.valueOf(epochBefore + 1), field(elected, "MasterEpoch"), elected);
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> second.addr().equals(routeMaster(rmq, namesrv)),
            () -> "the name server never routed broker-a to the elected master");

        DefaultMQProducer producer = rmq.producer("PG_controller_admin");
        String topic = "ControllerAdminTopic";
        SendResult[] last = new SendResult[1];
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> {
            try {
                last[0] = producer.send(RmqFast.message(topic, null, "after-elect"));
                return last[0].getSendStatus() == SendStatus.SEND_OK;
            } catch (Exception e) {
                return false;
            }
        }, () -> "no SEND_OK after electMaster: " + last[0]);
        String storedBy = MessageDecoder.decodeMessageId(last[0].getOffsetMsgId()).getAddress().toString();
        assertTrue(storedBy.endsWith(":" + second.port), "stored by " + storedBy + ", new master is " + second.addr());
    }

    /** The value of `key` in each member's section of getControllerConfig's output, in order. */
    private static List<String> values(String output, String key) {
        List<String> found = new ArrayList<>();
        for (String line : output.split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0 && line.substring(0, eq).trim().equals(key)) {
                found.add(line.substring(eq + 1).trim());
            }
        }
        return found;
    }

    private static String routeMaster(RmqFast rmq, RmqFast.Proc namesrv) {
        return rmq.brokerAddr(namesrv, "broker-a", 0L);
    }

    private static String[] with(String[] base, String... more) {
        String[] all = new String[base.length + more.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(more, 0, all, base.length, more.length);
        return all;
    }
}
