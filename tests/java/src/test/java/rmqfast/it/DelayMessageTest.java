package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.exception.MQBrokerException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.protocol.RequestCode;
import org.apache.rocketmq.common.protocol.ResponseCode;
import org.apache.rocketmq.remoting.netty.NettyClientConfig;
import org.apache.rocketmq.remoting.netty.NettyRemotingClient;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** Delay levels (DELAY) and 5.x-style timers (TIMER_*): never early, delivered to the real topic, restart-safe. */
@ExtendWith(RmqFastExtension.class)
class DelayMessageTest {
    static final String LEVELS = "1s 2s 3s 4s 5s 6s 7s 8s";

    /** body -> wall-clock ms when the consumer first saw it. */
    private static Map<String, Long> consumeInto(RmqFast rmq, String group, String topic, Received sink) {
        Map<String, Long> arrivals = new ConcurrentHashMap<>();
        rmq.pushConsumer(group, topic, "*", msgs -> {
            long now = System.currentTimeMillis();
            msgs.forEach(m -> {
                arrivals.putIfAbsent(new String(m.getBody(), StandardCharsets.UTF_8), now);
                sink.add(m);
            });
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        }, 4);
        return arrivals;
    }

    @Test
    @Timeout(60)
    void delayLevelIsHonouredAcrossABrokerRestart(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a", "messageDelayLevel", LEVELS);
        String topic = "DL_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, "plain", List.of("now"));
        Message delayed = RmqFast.message(topic, "late", "delayed");
        delayed.setDelayTimeLevel(6); // 6 s
        long sentAt = System.currentTimeMillis();
        SendResult r = producer.send(delayed);
        RmqFast.assertSendOk("delayed", r);

        broker.stop(); // the delayed message is in SCHEDULE_TOPIC_XXXX only
        broker.start();

        Received got = new Received(topic);
        Map<String, Long> arrivals = consumeInto(rmq, "G_" + topic, topic, got);
        got.awaitAll(List.of("now", "delayed"), Duration.ofSeconds(30));
        long waited = arrivals.get("delayed") - sentAt;
        assertTrue(waited >= 6000, "level 6 (6 s) message arrived after only " + waited + " ms");
        assertTrue(arrivals.get("now") < arrivals.get("delayed"), "plain message should come first");
        assertNull(got.message("delayed").getProperty("DELAY"), "DELAY must be removed on delivery");
        got.assertExactly(List.of("now", "delayed"));

        // The scheduler's progress for level 6 is exposed like RocketMQ's delayOffset.json.
        NettyRemotingClient client = new NettyRemotingClient(new NettyClientConfig());
        client.start();
        try {
            RmqFast.awaitUntil(Duration.ofSeconds(5), () -> delayOffsets(client, broker.addr()).contains("\"6\":1"),
                () -> "GET_ALL_DELAY_OFFSET: " + delayOffsets(client, broker.addr()));
        } finally {
            client.shutdown();
        }
    }

    private static String delayOffsets(NettyRemotingClient client, String addr) {
        try {
            RemotingCommand req = RemotingCommand.createRequestCommand(RequestCode.GET_ALL_DELAY_OFFSET, null);
            RemotingCommand resp = client.invokeSync(addr, req, 3000);
            return resp.getCode() == ResponseCode.SUCCESS && resp.getBody() != null
                ? new String(resp.getBody(), StandardCharsets.UTF_8).replace(" ", "").replace("\n", "") : "";
        } catch (Exception e) {
            return e.toString();
        }
    }

    @Test
    @Timeout(60)
    void timerMessagesAreNotDeliveredBeforeTheirTime(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "messageDelayLevel", LEVELS);
        String topic = "TM_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        // The consumer must own the queues before the clock starts (a consumer that starts before its
        // topic exists only rebalances every 20 s).
        RmqFast.sendSync(producer, topic, null, List.of("warm-up"));
        awaitRoute(producer, topic);
        Received got = new Received(topic);
        Map<String, Long> arrivals = consumeInto(rmq, "G_" + topic, topic, got);
        got.awaitAll(List.of("warm-up"), Duration.ofSeconds(20));
        long base = System.currentTimeMillis();
        long deliverAt = base + 7_300;
        Message absolute = RmqFast.message(topic, null, "absolute");
        absolute.putUserProperty("TIMER_DELIVER_MS", String.valueOf(deliverAt));
        Message relative = RmqFast.message(topic, null, "relative");
        relative.putUserProperty("TIMER_DELAY_SEC", "3");
        long relativeSentAt = System.currentTimeMillis();
        RmqFast.assertSendOk("relative", producer.send(relative));
        RmqFast.assertSendOk("absolute", producer.send(absolute));

        got.awaitAll(List.of("absolute", "relative"), Duration.ofSeconds(30));
        long absLate = arrivals.get("absolute") - deliverAt;
        long relWaited = arrivals.get("relative") - relativeSentAt;
        assertTrue(absLate >= 0, "TIMER_DELIVER_MS message arrived " + (-absLate) + " ms early");
        assertTrue(absLate < 3_000, "TIMER_DELIVER_MS message arrived " + absLate + " ms late");
        assertTrue(relWaited >= 3_000, "TIMER_DELAY_SEC=3 message arrived after only " + relWaited + " ms");
        got.assertExactly(List.of("warm-up", "absolute", "relative"));
    }

    @Test
    @Timeout(60)
    void batchWithATimerMessageIsRefused(RmqFast rmq) {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "messageDelayLevel", LEVELS);
        String topic = "TB_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, List.of("warm-up"));
        Message a = RmqFast.message(topic, null, "a");
        Message b = RmqFast.message(topic, null, "b");
        b.putUserProperty("TIMER_DELAY_SEC", "5");
        MQBrokerException e = assertThrows(MQBrokerException.class, () -> producer.send(List.of(a, b)));
        assertEquals(ResponseCode.MESSAGE_ILLEGAL, e.getResponseCode(), e.toString());
    }

    /** Waits until the name server serves a route for {@code topic} (a consumer started earlier would not
     * see the topic until its next 20 s rebalance). */
    static void awaitRoute(org.apache.rocketmq.client.producer.DefaultMQProducer p, String topic) {
        RmqFast.awaitUntil(Duration.ofSeconds(20), () -> {
            try {
                return !p.fetchPublishMessageQueues(topic).isEmpty();
            } catch (Exception e) {
                return false;
            }
        }, () -> "no route for " + topic);
    }
}
