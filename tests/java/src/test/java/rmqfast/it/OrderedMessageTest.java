package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.impl.MQClientAPIImpl;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.subscription.SubscriptionGroupConfig;
import org.apache.rocketmq.common.protocol.body.LockBatchRequestBody;
import org.apache.rocketmq.common.protocol.body.UnlockBatchRequestBody;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Ordered messages: LOCK_BATCH_MQ / UNLOCK_BATCH_MQ semantics, and MessageListenerOrderly consumers that keep
 * per-queue order across a member leaving and its queues moving to the other member.
 */
@ExtendWith(RmqFastExtension.class)
class OrderedMessageTest {
    static {
        // An orderly consumer that fails to lock a queue (still held by the member giving it up) retries at the
        // next periodic rebalance, every 20 s by default; read once when the client's RebalanceService loads.
        System.setProperty("rocketmq.client.rebalance.waitInterval", "1000");
    }

    static final int ORDERS = 8;
    static final int STEPS = 40;

    @Test
    @Timeout(30)
    void queueLocksHaveOneOwner(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        String topic = "LK_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, List.of("w"));
        MQClientAPIImpl api = producer.getDefaultMQProducerImpl().getmQClientFactory().getMQClientAPIImpl();
        Set<MessageQueue> q01 = Set.of(new MessageQueue(topic, "broker-a", 0), new MessageQueue(topic, "broker-a", 1));
        Set<MessageQueue> q12 = Set.of(new MessageQueue(topic, "broker-a", 1), new MessageQueue(topic, "broker-a", 2));
        // Locks are taken for existing groups only (a real consumer's heartbeat creates its group first).
        for (String group : List.of("G", "OtherGroup")) {
            SubscriptionGroupConfig config = new SubscriptionGroupConfig();
            config.setGroupName(group);
            api.createSubscriptionGroup(broker.addr(), config, 3000);
        }
        Set<MessageQueue> made = Set.of(new MessageQueue(topic, "broker-zz", 0), new MessageQueue(topic + "_none", "broker-a", 0));
        assertEquals(Set.of(), lock(api, broker, "G", "client-A", made), "queues of another broker or topic are never locked");

        assertEquals(q01, lock(api, broker, "G", "client-A", q01));
        assertEquals(Set.of(new MessageQueue(topic, "broker-a", 2)), lock(api, broker, "G", "client-B", q12),
            "queue 1 is held by client-A");
        assertEquals(q12, lock(api, broker, "OtherGroup", "client-B", q12), "locks are per group");
        assertEquals(q01, lock(api, broker, "G", "client-A", q01), "the holder renews");

        UnlockBatchRequestBody unlock = new UnlockBatchRequestBody();
        unlock.setConsumerGroup("G");
        unlock.setClientId("client-B"); // not the holder of queue 1: no effect
        unlock.setMqSet(q01);
        api.unlockBatchMQ(broker.addr(), unlock, 3000, false);
        assertEquals(Set.of(new MessageQueue(topic, "broker-a", 2)), lock(api, broker, "G", "client-B", q12));
        unlock.setClientId("client-A");
        api.unlockBatchMQ(broker.addr(), unlock, 3000, true); // oneway, as consumers send it
        RmqFast.awaitUntil(Duration.ofSeconds(5), () -> lock(api, broker, "G", "client-B", q12).equals(q12),
            () -> "client-B never got queue 1 after client-A unlocked it");
    }

    /** A copy of a list the consumer threads append to (a synchronized list is iterated under its lock). */
    private static List<Integer> snapshot(List<Integer> steps) {
        synchronized (steps) {
            return new ArrayList<>(steps);
        }
    }

    private static Set<MessageQueue> lock(MQClientAPIImpl api, RmqFast.Proc broker, String group, String client,
                                          Set<MessageQueue> queues) {
        LockBatchRequestBody body = new LockBatchRequestBody();
        body.setConsumerGroup(group);
        body.setClientId(client);
        body.setMqSet(queues);
        try {
            return api.lockBatchMQ(broker.addr(), body, 3000);
        } catch (Exception e) {
            throw new AssertionError("LOCK_BATCH_MQ failed: " + e, e);
        }
    }

    @Test
    @Timeout(60)
    void orderedConsumptionSurvivesAMemberLeaving(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "OM_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        RmqFast.sendSync(producer, topic, null, List.of("w")); // creates the topic (4 queues)
        String group = "G_" + topic;
        Map<Integer, List<Integer>> seen = new ConcurrentHashMap<>();
        Map<Integer, Integer> queueOf = new ConcurrentHashMap<>();
        List<String> problems = Collections.synchronizedList(new ArrayList<>());
        DefaultMQPushConsumer c1 = orderly(rmq, group, topic, seen, queueOf, problems);
        DefaultMQPushConsumer c2 = orderly(rmq, group, topic, seen, queueOf, problems);
        try {
            RmqFast.awaitUntil(Duration.ofSeconds(20),
                () -> ConsumerGroupTest.owned(c1, topic).size() == 2 && ConsumerGroupTest.owned(c2, topic).size() == 2,
                () -> "queues not split: " + ConsumerGroupTest.owned(c1, topic) + " / "
                    + ConsumerGroupTest.owned(c2, topic));
            send(producer, topic, 0, STEPS / 2);
            RmqFast.awaitUntil(Duration.ofSeconds(20), () -> seen.values().stream().mapToInt(List::size).sum() >= ORDERS * 5,
                () -> "orderly consumers consumed nothing: " + seen);

            c1.shutdown(); // unlocks its queues; the broker tells c2 to rebalance and c2 locks them
            send(producer, topic, STEPS / 2, STEPS);
            RmqFast.awaitUntil(Duration.ofSeconds(30), () -> {
                for (int order = 0; order < ORDERS; order++) {
                    List<Integer> steps = seen.get(order);
                    if (steps == null || new TreeSet<>(snapshot(steps)).size() < STEPS) {
                        return false;
                    }
                }
                return true;
            }, () -> "not every step consumed: " + seen.entrySet().stream()
                .map(e -> e.getKey() + "=" + new TreeSet<>(snapshot(e.getValue())).size())
                .collect(Collectors.joining(", ")));
        } finally {
            c1.shutdown();
            c2.shutdown();
        }
        assertTrue(problems.isEmpty(), problems.toString());
        for (int order = 0; order < ORDERS; order++) {
            assertInOrder(order, seen.get(order));
        }
    }

    /**
     * At-least-once in order: a step may be redelivered (a restart from an earlier step after a queue moved), but no
     * step is ever consumed before all the steps preceding it.
     */
    private static void assertInOrder(int order, List<Integer> steps) {
        int highest = -1;
        synchronized (steps) {
            for (int step : steps) {
                if (step > highest + 1) {
                    throw new AssertionError("order " + order + " consumed step " + step + " before step "
                        + (highest + 1) + ": " + steps);
                }
                highest = Math.max(highest, step);
            }
        }
        assertEquals(STEPS - 1, highest);
    }

    private static DefaultMQPushConsumer orderly(RmqFast rmq, String group, String topic,
                                                 Map<Integer, List<Integer>> seen, Map<Integer, Integer> queueOf,
                                                 List<String> problems) throws Exception {
        DefaultMQPushConsumer c = rmq.tune(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.subscribe(topic, "order");
        c.registerMessageListener((MessageListenerOrderly) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                String[] parts = new String(m.getBody(), StandardCharsets.UTF_8).split("-");
                int order = Integer.parseInt(parts[0]);
                int step = Integer.parseInt(parts[1]);
                Integer previous = queueOf.putIfAbsent(order, m.getQueueId());
                if (previous != null && previous != m.getQueueId()) {
                    problems.add("order " + order + " seen on queues " + previous + " and " + m.getQueueId());
                }
                seen.computeIfAbsent(order, k -> Collections.synchronizedList(new ArrayList<>())).add(step);
            }
            RmqFast.sleep(5); // give a rebalance the chance to happen mid-stream
            return ConsumeOrderlyStatus.SUCCESS;
        });
        c.start();
        return c;
    }

    /** Steps [from, to) of every order, each order pinned to queue order % 4 by a MessageQueueSelector. */
    private static void send(DefaultMQProducer producer, String topic, int from, int to) throws Exception {
        for (int step = from; step < to; step++) {
            for (int order = 0; order < ORDERS; order++) {
                Message m = new Message(topic, "order", (order + "-" + step).getBytes(StandardCharsets.UTF_8));
                SendResult r = producer.send(m, (mqs, msg, arg) -> mqs.get((Integer) arg % mqs.size()), order);
                RmqFast.assertSendOk(order + "-" + step, r);
                assertEquals(order % 4, r.getMessageQueue().getQueueId());
            }
        }
    }
}
