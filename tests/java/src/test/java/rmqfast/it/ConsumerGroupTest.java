package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rmqfast.it.RmqFast.bodies;

import java.text.SimpleDateFormat;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Date;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.protocol.heartbeat.MessageModel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Consumer groups: clustering with client-side rebalance (split, then take-over when a member leaves),
 * broadcasting, and where a brand-new group starts (consumeFromWhere against QUERY_CONSUMER_OFFSET).
 */
@ExtendWith(RmqFastExtension.class)
class ConsumerGroupTest {
    private final List<DefaultMQPushConsumer> consumers = new ArrayList<>();

    /** A push consumer with its own sink that also records the queue ids it consumed from. */
    private DefaultMQPushConsumer consumer(RmqFast rmq, String group, String topic, MessageModel model,
                                           ConsumeFromWhere from, String timestamp, Received sink,
                                           Set<Integer> queues) throws Exception {
        DefaultMQPushConsumer c = rmq.tune(new DefaultMQPushConsumer(group));
        c.setMessageModel(model);
        c.setConsumeFromWhere(from);
        if (timestamp != null) {
            c.setConsumeTimestamp(timestamp);
        }
        c.subscribe(topic, "*");
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                sink.add(m);
                queues.add(m.getQueueId());
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        c.start();
        consumers.add(c);
        return c;
    }

    /** Queues of {@code topic} this consumer currently owns (client-side rebalance result). */
    static Set<Integer> owned(DefaultMQPushConsumer c, String topic) {
        return c.getDefaultMQPushConsumerImpl().getRebalanceImpl().getProcessQueueTable().entrySet().stream()
            .filter(e -> e.getKey().getTopic().equals(topic) && !e.getValue().isDropped())
            .map(e -> e.getKey().getQueueId()).collect(Collectors.toCollection(TreeSet::new));
    }

    private void shutdownAll() {
        consumers.forEach(DefaultMQPushConsumer::shutdown);
    }

    @Test
    @Timeout(60)
    void clusteringSplitsQueuesAndTakesOverWhenAMemberLeaves(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "CG_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> warmup = bodies("w-", 0, 1);
        RmqFast.sendSync(producer, topic, null, warmup); // creates the topic (4 queues)
        // A consumer that starts before the name server has the route only rebalances on
        // the client's 20 s timer (client behaviour, Apache's too): wait for the route.
        SqlFilterTest.awaitRoute(producer, topic);
        String group = "G_" + topic;
        Received first = new Received(topic);
        Received second = new Received(topic);
        Set<Integer> firstQueues = ConcurrentHashMap.newKeySet();
        Set<Integer> secondQueues = ConcurrentHashMap.newKeySet();
        try {
            DefaultMQPushConsumer c1 = consumer(rmq, group, topic, MessageModel.CLUSTERING,
                ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET, null, first, firstQueues);
            DefaultMQPushConsumer c2 = consumer(rmq, group, topic, MessageModel.CLUSTERING,
                ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET, null, second, secondQueues);
            RmqFast.awaitUntil(Duration.ofSeconds(20),
                () -> owned(c1, topic).size() == 2 && owned(c2, topic).size() == 2,
                () -> "queues not split 2/2: " + owned(c1, topic) + " / " + owned(c2, topic));
            Set<Integer> split1 = owned(c1, topic);
            Set<Integer> split2 = owned(c2, topic);
            Set<Integer> union = new TreeSet<>(split1);
            union.addAll(split2);
            assertEquals(Set.of(0, 1, 2, 3), union, "each queue has exactly one owner");
            firstQueues.clear();
            secondQueues.clear();

            List<String> phase1 = bodies("p1-", 0, 200);
            RmqFast.sendSync(producer, topic, null, phase1);
            awaitUnion(first, second, phase1);
            assertTrue(split1.containsAll(firstQueues), "c1 consumed outside its queues: " + firstQueues);
            assertTrue(split2.containsAll(secondQueues), "c2 consumed outside its queues: " + secondQueues);
            assertTrue(!first.bodies().isEmpty() && !second.bodies().isEmpty(), "both members consumed");

            c1.shutdown(); // unregisters: the broker tells c2 to rebalance
            consumers.remove(c1);
            RmqFast.awaitUntil(Duration.ofSeconds(20), () -> owned(c2, topic).size() == 4,
                () -> "c2 did not take over every queue: " + owned(c2, topic));
            List<String> phase2 = bodies("p2-", 0, 200);
            RmqFast.sendSync(producer, topic, null, phase2);
            second.awaitAll(phase2, Duration.ofSeconds(20));
            List<String> all = new ArrayList<>(warmup);
            all.addAll(phase1);
            all.addAll(phase2);
            awaitUnion(first, second, all); // at-least-once: nothing lost across the rebalance
        } finally {
            shutdownAll();
        }
    }

    private static void awaitUnion(Received a, Received b, List<String> expected) {
        RmqFast.awaitUntil(Duration.ofSeconds(20), () -> {
            Set<String> got = new HashSet<>(a.bodies());
            got.addAll(b.bodies());
            return got.containsAll(expected);
        }, () -> "missing e.g. " + expected.stream().filter(x -> !a.bodies().contains(x) && !b.bodies().contains(x))
            .limit(5).collect(Collectors.toList()));
    }

    @Test
    @Timeout(60)
    void broadcastingDeliversEveryMessageToEveryMember(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "BC_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, bodies("w-", 0, 1));
        SqlFilterTest.awaitRoute(producer, topic);
        String group = "G_" + topic;
        Received first = new Received(topic);
        Received second = new Received(topic);
        try {
            DefaultMQPushConsumer c1 = consumer(rmq, group, topic, MessageModel.BROADCASTING,
                ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET, null, first, ConcurrentHashMap.newKeySet());
            DefaultMQPushConsumer c2 = consumer(rmq, group, topic, MessageModel.BROADCASTING,
                ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET, null, second, ConcurrentHashMap.newKeySet());
            RmqFast.awaitUntil(Duration.ofSeconds(20),
                () -> owned(c1, topic).size() == 4 && owned(c2, topic).size() == 4,
                () -> "broadcasting members must each own every queue: " + owned(c1, topic) + " / " + owned(c2, topic));
            List<String> sent = bodies("b-", 0, 100);
            RmqFast.sendSync(producer, topic, null, sent);
            first.awaitAll(sent, Duration.ofSeconds(20));
            second.awaitAll(sent, Duration.ofSeconds(20));
        } finally {
            shutdownAll();
        }
    }

    /**
     * With accessMessageInMemoryMaxRatio=0 every stored message counts as "on disk", so QUERY_CONSUMER_OFFSET
     * answers QUERY_NOT_FOUND for a new group and the client applies its consumeFromWhere.
     */
    @Test
    @Timeout(60)
    void newGroupsStartWhereConsumeFromWhereSays(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", "accessMessageInMemoryMaxRatio", "0");
        String topic = "CF_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> early = bodies("early-", 0, 20);
        RmqFast.sendSync(producer, topic, null, early);
        sleep(2000);
        String timestamp = new SimpleDateFormat("yyyyMMddHHmmss").format(new Date()); // whole seconds
        sleep(1100);
        List<String> late = bodies("late-", 0, 20);
        RmqFast.sendSync(producer, topic, null, late);
        List<String> old = new ArrayList<>(early);
        old.addAll(late);

        Received fromLast = new Received(topic);
        Received fromFirst = new Received(topic);
        Received fromTime = new Received(topic);
        try {
            DefaultMQPushConsumer last = consumer(rmq, "GL_" + topic, topic, MessageModel.CLUSTERING,
                ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET, null, fromLast, ConcurrentHashMap.newKeySet());
            consumer(rmq, "GF_" + topic, topic, MessageModel.CLUSTERING,
                ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET, null, fromFirst, ConcurrentHashMap.newKeySet());
            consumer(rmq, "GT_" + topic, topic, MessageModel.CLUSTERING,
                ConsumeFromWhere.CONSUME_FROM_TIMESTAMP, timestamp, fromTime, ConcurrentHashMap.newKeySet());
            RmqFast.awaitUntil(Duration.ofSeconds(20), () -> owned(last, topic).size() == 4,
                () -> "last-offset consumer owns " + owned(last, topic));
            List<String> fresh = bodies("fresh-", 0, 20);
            RmqFast.sendSync(producer, topic, null, fresh);

            fromLast.awaitAll(fresh, Duration.ofSeconds(20));
            List<String> everything = new ArrayList<>(old);
            everything.addAll(fresh);
            fromFirst.awaitAll(everything, Duration.ofSeconds(20));
            List<String> sinceTime = new ArrayList<>(late);
            sinceTime.addAll(fresh);
            fromTime.awaitAll(sinceTime, Duration.ofSeconds(20));
            sleep(1000);
            fromLast.assertExactly(fresh);
            fromFirst.assertExactly(everything);
            fromTime.assertExactly(sinceTime);
        } finally {
            shutdownAll();
        }
    }

    /** RocketMQ's default: a new group on a queue whose first message is still in memory starts at offset 0. */
    @Test
    @Timeout(60)
    void newGroupOnHotQueuesStartsAtTheFirstMessage(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "CH_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> old = bodies("old-", 0, 20);
        RmqFast.sendSync(producer, topic, null, old);
        Received sink = new Received(topic);
        try {
            consumer(rmq, "G_" + topic, topic, MessageModel.CLUSTERING, ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET,
                null, sink, ConcurrentHashMap.newKeySet());
            sink.awaitAll(old, Duration.ofSeconds(20));
        } finally {
            shutdownAll();
        }
    }

    static void sleep(long ms) {
        RmqFast.sleep(ms);
    }

}
