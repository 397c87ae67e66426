package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.rocketmq.client.exception.RequestTimeoutException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.RequestCallback;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.client.utils.MessageUtil;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Request/reply (RPC API): {@code DefaultMQProducer.request} sends a request; a responder
 * consumer answers with {@code MessageUtil.createReplyMessage} sent to {@code {cluster}_REPLY_TOPIC}
 * (SEND_REPLY_MESSAGE_V2); the broker stores the reply and pushes it to the requester
 * (PUSH_REPLY_MESSAGE_TO_CLIENT). Requester, responder consumer and reply producer are
 * distinct client instances, so the push must find the requester's own connection.
 */
@ExtendWith(RmqFastExtension.class)
class RequestReplyTest {
    static final String TOPIC = "RequestTopic";
    static final String REPLY_TOPIC = RmqFast.CLUSTER + "_REPLY_TOPIC";

    private static String body(Message m) {
        return new String(m.getBody(), StandardCharsets.UTF_8);
    }

    /**
     * Registers the requester with the broker now: as in RocketMQ, the broker pushes a reply only
     * to a client it knows from a heartbeat, and the periodic one may not have run yet.
     */
    private static void heartbeat(DefaultMQProducer requester) {
        requester.getDefaultMQProducerImpl().getmQClientFactory().sendHeartbeatToAllBrokerWithLock();
    }

    /** Starts a consumer on {@link #TOPIC} answering every request with "reply:" + body. */
    private void startResponder(RmqFast rmq, AtomicInteger warmups, AtomicInteger replies) {
        DefaultMQProducer replier = rmq.producer("replier-group");
        rmq.pushConsumer("responder-group", TOPIC, "*", msgs -> {
            for (MessageExt msg : msgs) {
                if (msg.getProperty(MessageConst.PROPERTY_CORRELATION_ID) == null) {
                    warmups.incrementAndGet();
                    continue;
                }
                try {
                    Message reply = MessageUtil.createReplyMessage(msg,
                        ("reply:" + body(msg)).getBytes(StandardCharsets.UTF_8));
                    assertEquals(REPLY_TOPIC, reply.getTopic());
                    assertEquals(SendStatus.SEND_OK, replier.send(reply).getSendStatus());
                    replies.incrementAndGet();
                } catch (Exception e) {
                    return ConsumeConcurrentlyStatus.RECONSUME_LATER;
                }
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        }, 4);
    }

    @Test
    @Timeout(60)
    void requestsGetTheirOwnRepliesSyncAndAsync(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        rmq.startBroker("broker-a");
        AtomicInteger warmups = new AtomicInteger();
        AtomicInteger replies = new AtomicInteger();
        DefaultMQProducer requester = rmq.producer("requester-group");
        // Creates the request topic, then waits until the responder consumes from it.
        assertEquals(SendStatus.SEND_OK,
            requester.send(RmqFast.message(TOPIC, null, "warmup")).getSendStatus());
        // A consumer that starts before the name server has the route rebalances only 20 s later.
        SqlFilterTest.awaitRoute(requester, TOPIC);
        startResponder(rmq, warmups, replies);
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> warmups.get() > 0, () -> "responder never got the warm-up");
        heartbeat(requester);

        for (int i = 0; i < 20; i++) {
            String requestBody = "request-" + i;
            Message reply = requester.request(RmqFast.message(TOPIC, null, requestBody), 5000);
            assertNotNull(reply, requestBody + ": no reply");
            assertEquals("reply:" + requestBody, body(reply));
            assertEquals(REPLY_TOPIC, reply.getTopic());
        }

        CompletableFuture<Message> async = new CompletableFuture<>();
        requester.request(RmqFast.message(TOPIC, null, "async-request"), new RequestCallback() {
            @Override
            public void onSuccess(Message message) {
                // The 4.9.8 client also calls onSuccess(null) once the request itself is sent
                // (RequestResponseFuture.executeRequestCallback); the reply comes in a second call.
                if (message != null) {
                    async.complete(message);
                }
            }

            @Override
            public void onException(Throwable e) {
                async.completeExceptionally(e);
            }
        }, 5000);
        assertEquals("reply:async-request", body(async.get(10, TimeUnit.SECONDS)));

        // The responder counts a reply after its send returns, which can be after the requester
        // already got the pushed reply: wait for the count instead of reading it once.
        RmqFast.awaitUntil(java.time.Duration.ofSeconds(5), () -> replies.get() == 21,
            () -> "replies sent by the responder: expected 21, got " + replies.get());
        // storeReplyMessageEnable (default true): the replies are in the reply topic too.
        long stored = requester.maxOffset(new MessageQueue(REPLY_TOPIC, "broker-a", 0));
        assertTrue(stored >= 21, "stored replies: " + stored);
    }

    @Test
    @Timeout(60)
    void requestWithoutResponderTimesOutAndTheBrokerKeepsServing(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        DefaultMQProducer requester = rmq.producer("requester-group");
        try {
            Message reply = requester.request(RmqFast.message("NobodyListens", null, "lonely"), 1500);
            fail("a request nobody answers returned " + reply);
        } catch (RequestTimeoutException expected) {
            // The requester gives up on its own; the broker has nothing pending.
        }
        assertTrue(broker.isAlive(), "broker died: " + broker.stderr());

        AtomicInteger warmups = new AtomicInteger();
        AtomicInteger replies = new AtomicInteger();
        assertEquals(SendStatus.SEND_OK,
            requester.send(RmqFast.message(TOPIC, null, "warmup")).getSendStatus());
        // A consumer that starts before the name server has the route rebalances only 20 s later.
        SqlFilterTest.awaitRoute(requester, TOPIC);
        startResponder(rmq, warmups, replies);
        RmqFast.awaitUntil(Duration.ofSeconds(30), () -> warmups.get() > 0, () -> "responder never got the warm-up");
        heartbeat(requester);
        Message reply = requester.request(RmqFast.message(TOPIC, null, "after-timeout"), 5000);
        assertEquals("reply:after-timeout", body(reply));
    }
}
