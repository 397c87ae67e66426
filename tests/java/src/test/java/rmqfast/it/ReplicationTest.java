package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rmqfast.it.RmqFast.bodies;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.MessageQueue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Master/slave replication on loopback: SYNC_MASTER + SYNC_FLUSH master, SLAVE with the same brokerName. A
 * SEND_OK means the slave has the message, so after kill -9 of the master a consumer reads everything from the
 * slave; without a slave a SYNC_MASTER send answers SLAVE_NOT_AVAILABLE at once.
 */
@ExtendWith(RmqFastExtension.class)
class ReplicationTest {

    private static final String[] SYNC_MASTER = {"brokerRole", "SYNC_MASTER", "flushDiskType", "SYNC_FLUSH"};

    private static String[] with(String[] base, String... more) {
        String[] all = new String[base.length + more.length];
        System.arraycopy(base, 0, all, 0, base.length);
        System.arraycopy(more, 0, all, base.length, more.length);
        return all;
    }

    /** Sends probes to every queue until all are SEND_OK (the slave connected for every shard and confirms). */
    private static void awaitSlaveConfirms(DefaultMQProducer producer, String topic) {
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> {
            try {
                producer.send(RmqFast.message(topic, null, "route"));
                for (MessageQueue mq : producer.fetchPublishMessageQueues(topic)) {
                    if (producer.send(RmqFast.message(topic, null, "probe"), mq).getSendStatus() != SendStatus.SEND_OK) {
                        return false;
                    }
                }
                return true;
            } catch (Exception e) {
                return false;
            }
        }, () -> "sends never became SEND_OK on every queue: the slave did not connect to the master");
    }

    @Test
    @Timeout(150)
    void slaveServesEverySyncAcknowledgedMessageAfterMasterKill9(RmqFast rmq) {
        rmq.startNamesrv();
        String haPort = String.valueOf(RmqFast.freePort());
        RmqFast.Proc master = rmq.startBroker("broker-a", with(SYNC_MASTER, "haListenPort", haPort));
        rmq.startBrokerAs("broker-a-s", "broker-a", "brokerId", "1", "brokerRole", "SLAVE",
            "haListenPort", String.valueOf(RmqFast.freePort()));
        String topic = "HA_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        awaitSlaveConfirms(producer, topic);

        List<String> first = bodies("ha-", 0, 2000);
        RmqFast.sendSync(producer, topic, null, first); // asserts SEND_OK for every message
        RmqFast.sleep(11_000); // the slave copies topic configs from the master every 10 s
        master.kill9();

        Received got = new Received(topic);
        rmq.pushConsumer("GC_" + topic, topic, "*", got);
        got.awaitAll(first, Duration.ofSeconds(40));

        // The master comes back on its store; the slave reconnects and catches up with new messages.
        master.start();
        awaitSlaveConfirms(producer, topic);
        List<String> second = bodies("ha2-", 0, 200);
        RmqFast.sendSync(producer, topic, null, second);
        master.kill9();
        got.awaitAll(second, Duration.ofSeconds(40));
        List<String> all = new ArrayList<>(first);
        all.addAll(second);
        assertTrue(got.bodies().containsAll(all), "missing: " + got.missing(all, 10));
    }

    @Test
    @Timeout(60)
    void syncMasterWithoutSlaveAnswersSlaveNotAvailable(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", with(SYNC_MASTER, "haListenPort", String.valueOf(RmqFast.freePort())));
        String topic = "HANS_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        producer.send(RmqFast.message(topic, null, "warm-up")); // route lookup and topic creation
        long began = System.nanoTime();
        SendResult result = producer.send(RmqFast.message(topic, null, "no-slave"));
        long millis = (System.nanoTime() - began) / 1_000_000;
        assertEquals(SendStatus.SLAVE_NOT_AVAILABLE, result.getSendStatus(), "result: " + result);
        assertTrue(result.getOffsetMsgId() != null, "the message is stored on the master: " + result);
        assertTrue(millis < 1000, "SLAVE_NOT_AVAILABLE took " + millis + " ms");
    }
}
