package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** CONSUMER_SEND_MSG_BACK: RECONSUME_LATER goes through %RETRY%group after the level delay, then to %DLQ%group. */
@ExtendWith(RmqFastExtension.class)
class RetryDlqTest {
    /** Level 3 (the first retry of a message: 3 + reconsumeTimes) is 2 s, later ones 1 s. */
    static final String LEVELS = "1s 1s 2s 1s 1s 1s 1s 1s";

    /** One delivery as the listener saw it. */
    record Delivery(long atMs, int reconsumeTimes, String topic, String body) {
    }

    private static DefaultMQPushConsumer consumer(RmqFast rmq, String group, String topic, int maxReconsume,
                                                  List<Delivery> seen, int failFirst) {
        DefaultMQPushConsumer c = rmq.tune(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setMaxReconsumeTimes(maxReconsume);
        try {
            c.subscribe(topic, "*");
            c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                for (MessageExt m : msgs) {
                    seen.add(new Delivery(System.currentTimeMillis(), m.getReconsumeTimes(), m.getTopic(),
                        new String(m.getBody(), StandardCharsets.UTF_8)));
                }
                return seen.size() <= failFirst ? ConsumeConcurrentlyStatus.RECONSUME_LATER
                    : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            c.start();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        return c;
    }

    @Test
    @Timeout(60)
    void reconsumeLaterIsRedeliveredAfterTheRetryDelay(RmqFast rmq) {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "messageDelayLevel", LEVELS);
        String topic = "RT_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, "t", List.of("once-more"));
        List<Delivery> seen = new CopyOnWriteArrayList<>();
        DefaultMQPushConsumer c = consumer(rmq, "G_" + topic, topic, 16, seen, 1);
        try {
            RmqFast.awaitUntil(Duration.ofSeconds(30), () -> seen.size() >= 2, () -> "deliveries: " + seen);
            RmqFast.sleep(2000);
        } finally {
            c.shutdown();
        }
        assertEquals(2, seen.size(), "exactly one redelivery expected: " + seen);
        Delivery first = seen.get(0);
        Delivery second = seen.get(1);
        assertEquals(0, first.reconsumeTimes());
        assertEquals(1, second.reconsumeTimes(), "reconsumeTimes must be incremented: " + seen);
        assertEquals(topic, second.topic(), "retried message must show its original topic");
        assertEquals("once-more", second.body());
        long gap = second.atMs() - first.atMs();
        assertTrue(gap >= 2000, "retry (delay level 3 = 2 s) came back after only " + gap + " ms");
    }

    @Test
    @Timeout(60)
    void exhaustedRetriesLandInTheDeadLetterQueue(RmqFast rmq) {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "messageDelayLevel", "1s 1s 1s 1s 1s 1s 1s 1s");
        String topic = "DQ_" + System.nanoTime();
        String group = "G_" + topic;
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, "t", List.of("doomed"));
        List<Delivery> seen = new CopyOnWriteArrayList<>();
        DefaultMQPushConsumer c = consumer(rmq, group, topic, 2, seen, Integer.MAX_VALUE);
        try {
            RmqFast.awaitUntil(Duration.ofSeconds(30), () -> seen.size() >= 3, () -> "deliveries: " + seen);
            RmqFast.sleep(3000); // a fourth delivery would mean the DLQ was skipped
        } finally {
            c.shutdown();
        }
        assertEquals(3, seen.size(), "original + 2 retries expected: " + seen);
        for (int i = 0; i < 3; i++) {
            assertEquals(i, seen.get(i).reconsumeTimes(), "delivery " + i + ": " + seen);
        }

        DefaultLitePullConsumer dlq = rmq.litePullConsumer("DLQ_READER_" + topic, "%DLQ%" + group);
        List<MessageExt> dead = new CopyOnWriteArrayList<>();
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> {
            dead.addAll(dlq.poll(500));
            return !dead.isEmpty();
        }, () -> "nothing in %DLQ%" + group);
        MessageExt m = dead.get(0);
        assertEquals("doomed", new String(m.getBody(), StandardCharsets.UTF_8));
        assertEquals("kdoomed", m.getKeys());
        assertEquals(3, m.getReconsumeTimes());
        assertEquals(topic, m.getProperty("RETRY_TOPIC"));
        assertTrue(m.getProperty("ORIGIN_MESSAGE_ID") != null, "ORIGIN_MESSAGE_ID missing");
    }
}
