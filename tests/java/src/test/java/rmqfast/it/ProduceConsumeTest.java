package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rmqfast.it.RmqFast.bodies;
import static rmqfast.it.RmqFast.message;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Sync/async/oneway produce to an auto-created topic, then push and lite-pull consumption of everything.
 * Runs twice: JSON headers (default) and RocketMQ binary headers (-Drocketmq.serialize.type=ROCKETMQ).
 */
@ExtendWith(RmqFastExtension.class)
class ProduceConsumeTest {
    static final int SYNC = 4000;
    static final int ASYNC = 4000;
    static final int ONEWAY = 2000;
    static final int TOTAL = SYNC + ASYNC + ONEWAY;

    @Test
    @Timeout(240)
    void sendSyncAsyncOnewayThenConsumeWithPushAndLitePull(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "PC_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        producer.setDefaultTopicQueueNums(8); // the broker's defaultTopicQueueNums=4 must win (TBW102 has 4)
        List<String> all = bodies("msg-", 0, TOTAL);
        long t0 = System.nanoTime();

        // sync: the first send auto-creates the topic from TBW102
        Map<String, SendResult> results = new ConcurrentHashMap<>(
            RmqFast.sendSync(producer, topic, null, all.subList(0, SYNC)));
        List<MessageQueue> queues = awaitPublishQueues(producer, topic);
        assertEquals(4, queues.size(), "auto-created topic should have defaultTopicQueueNums=4 queues: " + queues);
        assertEquals(Set.of(0, 1, 2, 3), queues.stream().map(MessageQueue::getQueueId).collect(Collectors.toSet()));
        assertTrue(queues.stream().allMatch(q -> "broker-a".equals(q.getBrokerName())), queues::toString);

        // async, at most 256 in flight
        Semaphore inFlight = new Semaphore(256);
        List<String> asyncErrors = Collections.synchronizedList(new ArrayList<>());
        for (String body : all.subList(SYNC, SYNC + ASYNC)) {
            inFlight.acquire();
            producer.send(message(topic, null, body), new SendCallback() {
                @Override
                public void onSuccess(SendResult r) {
                    results.put(body, r);
                    inFlight.release();
                }

                @Override
                public void onException(Throwable e) {
                    asyncErrors.add(body + ": " + e);
                    inFlight.release();
                }
            });
        }
        assertTrue(inFlight.tryAcquire(256, 60, TimeUnit.SECONDS), "async sends did not all complete within 60 s");
        assertEquals(List.of(), asyncErrors.subList(0, Math.min(10, asyncErrors.size())),
            asyncErrors.size() + " async sends failed");

        // oneway
        for (String body : all.subList(SYNC + ASYNC, TOTAL)) {
            producer.sendOneway(message(topic, null, body));
        }

        phase("produce", t0);
        assertEquals(SYNC + ASYNC, results.size());
        results.forEach(RmqFast::assertSendOk);
        assertEquals(SYNC + ASYNC, results.values().stream().map(SendResult::getOffsetMsgId).distinct().count(),
            "offsetMsgIds (store host + commit log offset) must be unique");
        assertEquals(SYNC + ASYNC, results.values().stream().map(SendResult::getMsgId).distinct().count(),
            "msgIds must be unique");

        // push consumer, new group, from the first offset
        Received pushed = new Received(topic);
        rmq.pushConsumer("PUSH_" + topic, topic, "*", pushed);
        long t1 = System.nanoTime();
        pushed.awaitAll(all, Duration.ofSeconds(60));
        phase("push consume", t1);
        RmqFast.sleep(1000);
        pushed.assertExactly(all);
        assertStoredAsSent(pushed, results);
        assertEquals(Set.of(0, 1, 2, 3), all.stream().map(b -> pushed.message(b).getQueueId()).collect(Collectors.toSet()),
            "messages should be spread over all 4 queues");

        // lite pull consumer, new group, auto commit
        Received pulled = new Received(topic);
        DefaultLitePullConsumer lite = rmq.litePullConsumer("LITE_" + topic, topic);
        t1 = System.nanoTime();
        long deadline = t1 + TimeUnit.SECONDS.toNanos(60);
        while (pulled.distinct() < TOTAL && System.nanoTime() < deadline) {
            lite.poll().forEach(pulled::add);
        }
        phase("lite pull consume", t1);
        pulled.assertExactly(all);
        assertStoredAsSent(pulled, results);
    }

    @Test
    @Timeout(90)
    void pushConsumerReceivesOnlySubscribedTag(RmqFast rmq) {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        String topic = "TAG_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> a = bodies("A-", 0, 20);
        List<String> b = bodies("B-", 0, 20);
        for (int i = 0; i < 20; i++) {
            RmqFast.sendSync(producer, topic, "A", List.of(a.get(i)));
            RmqFast.sendSync(producer, topic, "B", List.of(b.get(i)));
        }
        Received got = new Received(topic);
        rmq.pushConsumer("TAGC_" + topic, topic, "A", got);
        got.awaitAll(a, Duration.ofSeconds(30));
        RmqFast.sleep(2000); // give any wrongly delivered "B" message time to arrive
        got.assertExactly(a);
        Set<String> tags = new TreeSet<>();
        a.forEach(body -> tags.add(got.message(body).getTags()));
        assertEquals(Set.of("A"), tags);
    }

    private static void phase(String what, long startNanos) {
        System.out.printf("%s: %d ms (serialize type %s)%n", what, (System.nanoTime() - startNanos) / 1_000_000,
            System.getProperty("rocketmq.serialize.type", "JSON"));
    }

    /** The consumed messages carry the ids, queue and queue offset the broker returned when they were sent. */
    private static void assertStoredAsSent(Received got, Map<String, SendResult> sent) {
        List<String> bad = new ArrayList<>();
        sent.forEach((body, r) -> {
            MessageExt m = got.message(body);
            String[] ids = Received.ids(m);
            if (!r.getMsgId().equals(ids[0]) || !r.getOffsetMsgId().equals(ids[1])
                || r.getMessageQueue().getQueueId() != m.getQueueId() || r.getQueueOffset() != m.getQueueOffset()) {
                bad.add(body + ": sent " + r.getMsgId() + "/" + r.getOffsetMsgId() + " q" + r.getMessageQueue().getQueueId()
                    + "@" + r.getQueueOffset() + ", consumed " + ids[0] + "/" + ids[1] + " q" + m.getQueueId()
                    + "@" + m.getQueueOffset());
            }
        });
        assertTrue(bad.isEmpty(), bad.size() + " messages differ from their send results, e.g. "
            + bad.subList(0, Math.min(5, bad.size())));
    }

    private static List<MessageQueue> awaitPublishQueues(DefaultMQProducer producer, String topic) {
        AtomicReference<List<MessageQueue>> queues = new AtomicReference<>();
        AtomicReference<Exception> last = new AtomicReference<>();
        RmqFast.awaitUntil(Duration.ofSeconds(15), () -> {
            try {
                queues.set(producer.fetchPublishMessageQueues(topic));
                return true;
            } catch (Exception e) {
                last.set(e);
                return false;
            }
        }, () -> "route of auto-created topic " + topic + " never reached the name server: " + last.get());
        return queues.get();
    }
}
