package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Function;

import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** Half messages, END_TRANSACTION commit/rollback, and the CHECK_TRANSACTION_STATE check-back. */
@ExtendWith(RmqFastExtension.class)
class TransactionTest {
    static final String[] FAST_CHECKS = {
        "transactionCheckInterval", "1000", "transactionTimeOut", "1000", "transactionCheckMax", "2"};

    /** Check-back calls per body. */
    private final Map<String, AtomicInteger> checks = new ConcurrentHashMap<>();

    private static String body(Message m) {
        return new String(m.getBody(), StandardCharsets.UTF_8);
    }

    private TransactionMQProducer producer(RmqFast rmq, String group, Function<String, LocalTransactionState> local,
                                           Function<String, LocalTransactionState> check) {
        TransactionMQProducer p = rmq.tune(new TransactionMQProducer(group));
        p.setSendMsgTimeout(10_000);
        p.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                return local.apply(body(msg));
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                checks.computeIfAbsent(body(msg), b -> new AtomicInteger()).incrementAndGet();
                return check.apply(body(msg));
            }
        });
        try {
            p.start();
        } catch (Exception e) {
            throw new AssertionError(e);
        }
        return p;
    }

    private static void sendHalf(TransactionMQProducer p, String topic, String body) {
        try {
            TransactionSendResult r = p.sendMessageInTransaction(RmqFast.message(topic, null, body), null);
            assertEquals(SendStatus.SEND_OK, r.getSendStatus(), body + ": " + r);
        } catch (Exception e) {
            throw new AssertionError("transactional send of " + body + " failed: " + e, e);
        }
    }

    private int checksOf(String body) {
        AtomicInteger n = checks.get(body);
        return n == null ? 0 : n.get();
    }

    @Test
    @Timeout(60)
    void commitIsVisibleRollbackIsNotAndUnknownIsCheckedBack(RmqFast rmq) {
        rmq.startNamesrv();
        rmq.startBroker("broker-a", FAST_CHECKS);
        String topic = "TX_" + System.nanoTime();
        TransactionMQProducer p = producer(rmq, "PG_" + topic,
            b -> b.startsWith("c-") ? LocalTransactionState.COMMIT_MESSAGE
                : b.startsWith("r-") ? LocalTransactionState.ROLLBACK_MESSAGE : LocalTransactionState.UNKNOW,
            b -> b.startsWith("u-") ? LocalTransactionState.COMMIT_MESSAGE : LocalTransactionState.ROLLBACK_MESSAGE);
        try {
            Received got = new Received(topic);
            // Create the topic and let the consumer own its queues first (a consumer that starts before
            // its topic exists only rebalances every 20 s).
            RmqFast.sendSync(p, topic, null, List.of("warm-up"));
            awaitRoute(p, topic);
            rmq.pushConsumer("G_" + topic, topic, "*", got);
            got.awaitAll(List.of("warm-up"), Duration.ofSeconds(20));
            List<String> all = List.of("c-1", "r-1", "u-1", "c-2", "r-2");
            long sentAt = System.currentTimeMillis();
            all.forEach(b -> sendHalf(p, topic, b));
            got.awaitAll(List.of("c-1", "c-2"), Duration.ofSeconds(20));
            got.awaitAll(List.of("u-1"), Duration.ofSeconds(20));
            long unknownAfter = System.currentTimeMillis() - sentAt;
            RmqFast.sleep(4000); // rollbacks would have shown up by now (several check rounds)
            got.assertExactly(List.of("warm-up", "c-1", "c-2", "u-1"));
            assertTrue(checksOf("u-1") >= 1, "u-1 arrived without a check-back: " + checks);
            assertEquals(0, checksOf("c-1") + checksOf("r-1"), "decided transactions were checked: " + checks);
            assertTrue(unknownAfter >= 1000, "unknown transaction committed before transactionTimeOut");
        } finally {
            p.shutdown();
        }
    }

    @Test
    @Timeout(60)
    void unansweredHalfMessageIsDiscardedAfterCheckMaxEvenAcrossRestart(RmqFast rmq) {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a", FAST_CHECKS);
        String topic = "TXU_" + System.nanoTime();
        TransactionMQProducer p = producer(rmq, "PG_" + topic,
            b -> LocalTransactionState.UNKNOW, b -> LocalTransactionState.UNKNOW);
        try {
            Received got = new Received(topic);
            RmqFast.sendSync(p, topic, null, List.of("warm-up"));
            awaitRoute(p, topic);
            rmq.pushConsumer("G_" + topic, topic, "*", got);
            got.awaitAll(List.of("warm-up"), Duration.ofSeconds(20));
            sendHalf(p, topic, "limbo");
            RmqFast.awaitUntil(Duration.ofSeconds(20), () -> checksOf("limbo") >= 2, () -> "checks: " + checks);
            RmqFast.sleep(4000);
            assertEquals(2, checksOf("limbo"), "transactionCheckMax=2 but checked " + checksOf("limbo") + " times");
            broker.stop();
            broker.start();
            RmqFast.sleep(5000);
            assertEquals(2, checksOf("limbo"), "discarded half message was checked again after a restart");
            got.assertExactly(List.of("warm-up")); // the half message was never delivered
        } finally {
            p.shutdown();
        }
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
