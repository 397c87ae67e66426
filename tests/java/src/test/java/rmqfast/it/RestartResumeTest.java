package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static rmqfast.it.RmqFast.bodies;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** Broker restarts on the same store: consumer offsets, topics and messages must survive. */
@ExtendWith(RmqFastExtension.class)
class RestartResumeTest {

    @Test
    @Timeout(180)
    void consumerGroupResumesAfterCleanBrokerRestart(RmqFast rmq) {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a", "flushDiskType", "SYNC_FLUSH");
        String topic = "RR_" + System.nanoTime();
        String group = "G_" + topic;
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        List<String> before = bodies("r-", 0, 2000);
        Map<String, SendResult> sentBefore = RmqFast.sendSync(producer, topic, null, before);

        // Run 1: one consume thread, batches of 1 => per queue the consumed messages are a prefix, so the offsets
        // the client commits are exact. After 1,000 messages the listener stalls (never acks) until shutdown.
        Received run1 = new Received(topic);
        AtomicInteger accepted = new AtomicInteger();
        CountDownLatch release = new CountDownLatch(1);
        DefaultMQPushConsumer c1 = rmq.pushConsumer(group, topic, "*", msgs -> {
            if (accepted.get() >= 1000) {
                awaitIgnoringInterrupts(release); // shutdown() interrupts us; the result is discarded anyway
                return ConsumeConcurrentlyStatus.RECONSUME_LATER;
            }
            msgs.forEach(run1::add);
            accepted.addAndGet(msgs.size());
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        }, 1);
        RmqFast.awaitUntil(Duration.ofSeconds(60), () -> accepted.get() >= 1000,
            () -> "first consumer got only " + accepted.get() + " messages");
        RmqFast.sleep(2500); // a few periodic offset commits (every 1 s) with the final position
        c1.shutdown(); // persists offsets once more
        release.countDown();
        assertEquals(1000, run1.distinct(), "run 1 duplicates: " + run1.duplicates());

        int exit = broker.stop();
        System.out.println("broker exited with code " + exit + " after SIGTERM");
        broker.start();

        List<String> after = bodies("r-", 2000, 3000);
        Map<String, SendResult> sentAfter = RmqFast.sendSync(producer, topic, null, after);
        assertQueueOffsetsContinue(sentBefore, sentAfter);

        Received run2 = new Received(topic);
        rmq.pushConsumer(group, topic, "*", run2);
        List<String> expected = new ArrayList<>(before);
        expected.addAll(after);
        expected.removeAll(run1.bodies());
        run2.awaitAll(expected, Duration.ofSeconds(60));
        RmqFast.sleep(3000); // let redeliveries, if any, show up
        Set<String> twice = new TreeSet<>(run1.bodies());
        twice.retainAll(run2.bodies());
        assertTrue(twice.isEmpty(), twice.size() + " messages consumed in run 1 were delivered again after the restart"
            + " (committed offsets lost or stale), e.g. " + twice.stream().limit(10).collect(Collectors.toList()));
        run2.assertExactly(expected);
        assertEquals(3000, run1.distinct() + run2.distinct());
    }

    @Test
    @Timeout(120)
    void syncFlushedMessagesSurviveKill9(RmqFast rmq) {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a", "flushDiskType", "SYNC_FLUSH");
        String topic = "K9_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("PG_" + topic);
        String pad = "|" + "0123456789abcdefghijklmnopqrstuvwxyz".repeat(8) + "|";
        List<String> sent = bodies(pad + "k9-", 0, 1000);
        RmqFast.sendSync(producer, topic, null, sent);

        broker.kill9();
        broker.start();

        Received got = new Received(topic);
        rmq.pushConsumer("K9C_" + topic, topic, "*", got);
        got.awaitAll(sent, Duration.ofSeconds(60));
        RmqFast.sleep(1000);
        got.assertExactly(sent);
    }

    /** After a restart the consume queues must continue where they were, not start again at 0. */
    private static void assertQueueOffsetsContinue(Map<String, SendResult> before, Map<String, SendResult> after) {
        Map<Integer, Long> maxBefore = new HashMap<>();
        before.values().forEach(r -> maxBefore.merge(r.getMessageQueue().getQueueId(), r.getQueueOffset(), Math::max));
        List<String> bad = new ArrayList<>();
        after.forEach((body, r) -> {
            Long prev = maxBefore.get(r.getMessageQueue().getQueueId());
            if (prev != null && r.getQueueOffset() <= prev) {
                bad.add(body + " got q" + r.getMessageQueue().getQueueId() + "@" + r.getQueueOffset()
                    + " but that queue already reached offset " + prev + " before the restart");
            }
        });
        assertTrue(bad.isEmpty(), bad.size() + " sends after restart reused queue offsets, e.g. "
            + bad.subList(0, Math.min(5, bad.size())));
    }

    private static void awaitIgnoringInterrupts(CountDownLatch latch) {
        boolean interrupted = false;
        while (latch.getCount() > 0) {
            try {
                latch.await();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
