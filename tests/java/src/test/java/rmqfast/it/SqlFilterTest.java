package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.MessageSelector;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** SQL92 property filters (MessageSelector.bySql) evaluated by the broker when enablePropertyFilter=true. */
@ExtendWith(RmqFastExtension.class)
class SqlFilterTest {
    static final int COUNT = 60;

    /** Message i: properties a=i, b='x' for even i and 'y' for odd i; messages 50.. have no property a. */
    private static List<String> sendAll(DefaultMQProducer producer, String topic) throws Exception {
        List<String> selected = new ArrayList<>();
        for (int i = 0; i < COUNT; i++) {
            String body = "m-" + i;
            Message m = RmqFast.message(topic, "tag" + (i % 3), body);
            if (i < 50) {
                m.putUserProperty("a", String.valueOf(i));
            }
            m.putUserProperty("b", i % 2 == 0 ? "x" : "y");
            RmqFast.assertSendOk(body, producer.send(m));
            if (i < 50 && i > 5 && i % 2 == 0) {
                selected.add(body);
            }
        }
        return selected;
    }

    /**
     * Waits until the name server routes {@code topic}: a consumer checks its SQL92 subscription with the brokers of
     * the topic's route (CHECK_CLIENT_CONFIG) only when it knows the route at start.
     */
    static void awaitRoute(DefaultMQProducer producer, String topic) {
        RmqFast.awaitUntil(Duration.ofSeconds(10), () -> {
            try {
                return producer.getDefaultMQProducerImpl().getmQClientFactory().getMQClientAPIImpl()
                    .getTopicRouteInfoFromNameServer(topic, 3000) != null;
            } catch (Exception e) {
                return false;
            }
        }, () -> "no route for " + topic);
    }

    private static DefaultMQPushConsumer sqlConsumer(RmqFast rmq, String group, String topic, String sql,
                                                     Received sink) throws MQClientException {
        DefaultMQPushConsumer c = rmq.tune(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, MessageSelector.bySql(sql));
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            msgs.forEach(sink::add);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        try {
            c.start();
        } catch (MQClientException e) {
            c.shutdown();
            throw e;
        }
        return c;
    }

    @Test
    @Timeout(60)
    void brokerSelectsByProperties(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "enablePropertyFilter", "true");
        String topic = "SQL_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> selected = sendAll(producer, topic);
        awaitRoute(producer, topic);
        Received sink = new Received(topic);
        Received inList = new Received(topic);
        DefaultMQPushConsumer c = sqlConsumer(rmq, "G1_" + topic, topic, "a > 5 AND b = 'x'", sink);
        DefaultMQPushConsumer c2 = sqlConsumer(rmq, "G2_" + topic, topic,
            "(a BETWEEN 10 AND 12 OR a IS NULL) AND TAGS IN ('tag0', 'tag1')", inList);
        try {
            sink.awaitAll(selected, Duration.ofSeconds(20));
            // 10 (tag1), 11 (tag2: out), 12 (tag0); a IS NULL: 50..59 with tag0/tag1
            List<String> expected = new ArrayList<>(List.of("m-10", "m-12"));
            for (int i = 50; i < COUNT; i++) {
                if (i % 3 != 2) {
                    expected.add("m-" + i);
                }
            }
            inList.awaitAll(expected, Duration.ofSeconds(20));
            // later messages are filtered as they arrive (long polling path)
            Message late = RmqFast.message(topic, null, "late-7");
            late.putUserProperty("a", "7");
            late.putUserProperty("b", "x");
            RmqFast.assertSendOk("late-7", producer.send(late));
            Message lateOut = RmqFast.message(topic, null, "late-out");
            lateOut.putUserProperty("a", "7");
            lateOut.putUserProperty("b", "z");
            RmqFast.assertSendOk("late-out", producer.send(lateOut));
            selected.add("late-7");
            sink.awaitAll(selected, Duration.ofSeconds(20));
            RmqFast.sleep(1000);
            sink.assertExactly(selected);
            inList.assertExactly(expected);
        } finally {
            c.shutdown();
            c2.shutdown();
        }
    }

    @Test
    @Timeout(60)
    void badExpressionsAndDisabledFilteringAreRefusedAtStart(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "enablePropertyFilter", "true");
        String topic = "SQLBAD_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, List.of("w"));
        awaitRoute(producer, topic);
        Received sink = new Received(topic);
        MQClientException e = assertThrows(MQClientException.class,
            () -> sqlConsumer(rmq, "GB_" + topic, topic, "a > ", sink));
        assertTrue(String.valueOf(e.getMessage()).contains("CODE: 23"), "SUBSCRIPTION_PARSE_FAILED: " + e);
        assertThrows(MQClientException.class, () -> sqlConsumer(rmq, "GC_" + topic, topic, "a > 'x'", sink));
    }

    @Test
    @Timeout(60)
    void sqlNeedsEnablePropertyFilter(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "SQLOFF_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, List.of("w"));
        awaitRoute(producer, topic);
        MQClientException e = assertThrows(MQClientException.class,
            () -> sqlConsumer(rmq, "G_" + topic, topic, "a > 5", new Received(topic)));
        assertTrue(String.valueOf(e.getMessage()).contains("does not support consumer to filter message by SQL92"),
            e.toString());
    }
}
