package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rmqfast.it.RmqFast.bodies;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.MessageSelector;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.admin.ConsumeStats;
import org.apache.rocketmq.common.admin.OffsetWrapper;
import org.apache.rocketmq.common.admin.TopicOffset;
import org.apache.rocketmq.common.admin.TopicStatsTable;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.body.Connection;
import org.apache.rocketmq.common.protocol.body.ConsumerConnection;
import org.apache.rocketmq.common.protocol.body.KVTable;
import org.apache.rocketmq.common.protocol.body.ProducerConnection;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** The admin reads of mqadmin and dashboards, broker config at runtime and offset reset, via DefaultMQAdminExt. */
@ExtendWith(RmqFastExtension.class)
class AdminTest {
    /** Messages sent to queue i. */
    static final int[] PER_QUEUE = {5, 3, 0, 7};

    private static DefaultMQAdminExt admin(RmqFast rmq) throws Exception {
        DefaultMQAdminExt admin = rmq.tune(new DefaultMQAdminExt());
        admin.start();
        return admin;
    }

    /** Sends PER_QUEUE[i] messages to queue i; returns the bodies. */
    private static List<String> fill(DefaultMQProducer producer, String topic, String prefix) throws Exception {
        List<String> sent = new ArrayList<>();
        for (int q = 0; q < PER_QUEUE.length; q++) {
            for (int i = 0; i < PER_QUEUE[q]; i++) {
                String body = prefix + q + "-" + i;
                MessageQueue mq = new MessageQueue(topic, "broker-a", q);
                RmqFast.assertSendOk(body, producer.send(RmqFast.message(topic, null, body), mq));
                sent.add(body);
            }
        }
        return sent;
    }

    private static DefaultMQPushConsumer consumer(RmqFast rmq, String group, String topic, Received sink)
        throws Exception {
        DefaultMQPushConsumer c = rmq.tune(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            msgs.forEach(sink::add);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        return c;
    }

    @Test
    @Timeout(60)
    void statsConnectionsAndRuntimeInfo(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        String topic = "AD_" + System.nanoTime();
        String producerGroup = "PG_" + topic;
        DefaultMQProducer producer = rmq.producer(producerGroup);
        RmqFast.sendSync(producer, topic, null, List.of("first")); // creates the topic
        SqlFilterTest.awaitRoute(producer, topic);
        DefaultMQAdminExt admin = admin(rmq);
        String group = "G_" + topic;
        Received sink = new Received(topic);
        DefaultMQPushConsumer consumer = consumer(rmq, group, topic, sink);
        try {
            TopicStatsTable before = admin.examineTopicStats(topic);
            long firstQueue = before.getOffsetTable().entrySet().stream()
                .filter(e -> e.getValue().getMaxOffset() == 1).count();
            assertEquals(1, firstQueue, "one queue holds the first message: " + before.getOffsetTable());
            int[] base = new int[PER_QUEUE.length];
            before.getOffsetTable().forEach((mq, off) -> base[mq.getQueueId()] = (int) off.getMaxOffset());

            long sentAt = System.currentTimeMillis();
            List<String> sent = fill(producer, topic, "s");
            sent.add("first");
            TopicStatsTable stats = admin.examineTopicStats(topic);
            assertEquals(4, stats.getOffsetTable().size(), stats.getOffsetTable().toString());
            for (Map.Entry<MessageQueue, TopicOffset> e : stats.getOffsetTable().entrySet()) {
                int q = e.getKey().getQueueId();
                assertEquals(topic, e.getKey().getTopic());
                assertEquals("broker-a", e.getKey().getBrokerName());
                assertEquals(0, e.getValue().getMinOffset());
                assertEquals(base[q] + PER_QUEUE[q], e.getValue().getMaxOffset(), "max offset of queue " + q);
                long last = e.getValue().getLastUpdateTimestamp();
                if (e.getValue().getMaxOffset() == 0) {
                    assertEquals(0, last, "empty queue " + q);
                } else if (PER_QUEUE[q] > 0) {
                    assertTrue(last >= sentAt - 1000 && last <= System.currentTimeMillis() + 1000,
                        "lastUpdateTimestamp of queue " + q + ": " + last);
                }
            }

            sink.awaitAll(sent, Duration.ofSeconds(20));
            RmqFast.awaitUntil(Duration.ofSeconds(15), () -> {
                try {
                    return admin.examineConsumeStats(group).computeTotalDiff() == 0;
                } catch (Exception e) {
                    return false;
                }
            }, () -> "consumer offsets never caught up");
            ConsumeStats consumeStats = admin.examineConsumeStats(group);
            Map<MessageQueue, OffsetWrapper> mine = consumeStats.getOffsetTable().entrySet().stream()
                .filter(e -> e.getKey().getTopic().equals(topic))
                .collect(Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue));
            assertEquals(4, mine.size(), consumeStats.getOffsetTable().toString());
            long total = mine.values().stream().mapToLong(OffsetWrapper::getBrokerOffset).sum();
            assertEquals(sent.size(), total);
            mine.forEach((mq, w) -> {
                assertEquals(w.getBrokerOffset(), w.getConsumerOffset(), mq.toString());
                if (w.getConsumerOffset() > 0) {
                    assertTrue(w.getLastTimestamp() >= sentAt - 2000, "lastTimestamp of " + mq + ": " + w);
                }
            });

            ConsumerConnection cc = admin.examineConsumerConnectionInfo(group);
            String clientId = consumer.getDefaultMQPushConsumerImpl().getmQClientFactory().getClientId();
            assertEquals(Set.of(clientId),
                cc.getConnectionSet().stream().map(Connection::getClientId).collect(Collectors.toSet()));
            Connection conn = cc.getConnectionSet().iterator().next();
            assertEquals("JAVA", conn.getLanguage().name());
            assertTrue(conn.getClientAddr().startsWith("127.0.0.1:"), conn.getClientAddr());
            assertEquals(MessageModel.CLUSTERING, cc.getMessageModel());
            assertEquals(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET, cc.getConsumeFromWhere());
            assertTrue(cc.getSubscriptionTable().containsKey(topic), cc.getSubscriptionTable().toString());

            ProducerConnection pc = admin.examineProducerConnectionInfo(producerGroup, topic);
            String producerId = producer.getDefaultMQProducerImpl().getmQClientFactory().getClientId();
            assertTrue(pc.getConnectionSet().stream().anyMatch(c -> c.getClientId().equals(producerId)),
                pc.getConnectionSet().toString());

            KVTable runtime = admin.fetchBrokerRuntimeStats(broker.addr());
            long put = Long.parseLong(runtime.getTable().get("msgPutTotalTodayNow"));
            assertTrue(put >= sent.size(), "msgPutTotalTodayNow=" + put);
        } finally {
            consumer.shutdown();
            admin.shutdown();
        }
    }

    @Test
    @Timeout(60)
    void brokerConfigCanBeReadAndChangedAtRuntime(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        String topic = "CFG_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, List.of("w"));
        SqlFilterTest.awaitRoute(producer, topic);
        DefaultMQAdminExt admin = admin(rmq);
        try {
            Properties config = admin.getBrokerConfig(broker.addr());
            assertEquals("broker-a", config.getProperty("brokerName"));
            assertEquals("false", config.getProperty("enablePropertyFilter"));

            Properties change = new Properties();
            change.setProperty("enablePropertyFilter", "true");
            admin.updateBrokerConfig(broker.addr(), change);
            assertEquals("true", admin.getBrokerConfig(broker.addr()).getProperty("enablePropertyFilter"));

            // and it takes effect: a SQL92 consumer is now accepted and filtered by the broker
            Received sink = new Received(topic);
            DefaultMQPushConsumer c = rmq.tune(new DefaultMQPushConsumer("G_" + topic));
            c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
            c.subscribe(topic, MessageSelector.bySql("k = 'yes'"));
            c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
                msgs.forEach(sink::add);
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            });
            c.start();
            try {
                for (String v : List.of("yes", "no")) {
                    var m = RmqFast.message(topic, null, "k-" + v);
                    m.putUserProperty("k", v);
                    RmqFast.assertSendOk(v, producer.send(m));
                }
                sink.awaitAll(List.of("k-yes"), Duration.ofSeconds(20));
                RmqFast.sleep(500);
                sink.assertExactly(List.of("k-yes"));
            } finally {
                c.shutdown();
            }

            Properties bad = new Properties();
            bad.setProperty("accessMessageInMemoryMaxRatio", "300");
            try {
                admin.updateBrokerConfig(broker.addr(), bad);
                throw new AssertionError("an out-of-range value must be refused");
            } catch (org.apache.rocketmq.client.exception.MQBrokerException expected) {
                assertEquals(1, expected.getResponseCode());
            }
            assertEquals("40", admin.getBrokerConfig(broker.addr()).getProperty("accessMessageInMemoryMaxRatio"));
        } finally {
            admin.shutdown();
        }
    }

    @Test
    @Timeout(60)
    void resetOffsetByTimestampForAStoppedGroup(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "RS_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> before = fill(producer, topic, "b");
        SqlFilterTest.awaitRoute(producer, topic);
        String group = "G_" + topic;
        Received first = new Received(topic);
        DefaultMQPushConsumer c1 = consumer(rmq, group, topic, first);
        RmqFast.sleep(1200);
        long resetTo = System.currentTimeMillis();
        RmqFast.sleep(100);
        List<String> after = fill(producer, topic, "a");
        List<String> all = new ArrayList<>(before);
        all.addAll(after);
        DefaultMQAdminExt admin = admin(rmq);
        try {
            first.awaitAll(all, Duration.ofSeconds(20));
            c1.shutdown(); // persists its offsets (= the end of every queue)

            Map<MessageQueue, Long> reset = admin.resetOffsetByTimestamp(topic, group, resetTo, true);
            assertEquals(4, reset.size(), reset.toString());
            reset.forEach((mq, offset) -> assertEquals(PER_QUEUE[mq.getQueueId()], offset, "offset of " + mq));
            ConsumeStats stats = admin.examineConsumeStats(group);
            stats.getOffsetTable().forEach((mq, w) -> {
                if (mq.getTopic().equals(topic)) {
                    assertEquals(PER_QUEUE[mq.getQueueId()], w.getConsumerOffset(), "committed offset of " + mq);
                }
            });

            Received second = new Received(topic);
            DefaultMQPushConsumer c2 = consumer(rmq, group, topic, second);
            try {
                second.awaitAll(after, Duration.ofSeconds(20));
                RmqFast.sleep(1000);
                second.assertExactly(after);
            } finally {
                c2.shutdown();
            }
        } finally {
            admin.shutdown();
        }
    }
}
