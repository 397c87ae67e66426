package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.apache.rocketmq.client.QueryResult;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * QUERY_MESSAGE through the official client: queryMessage by KEYS, viewMessage by the unique
 * key (msgId) and by offsetMsgId, before and after a kill -9 (the index is rebuilt from the
 * commit log without duplicates).
 */
@ExtendWith(RmqFastExtension.class)
class QueryMessageTest {
    private static List<String> bodies(QueryResult result) {
        return result.getMessageList().stream()
            .map(m -> new String(m.getBody(), StandardCharsets.UTF_8))
            .sorted()
            .collect(Collectors.toList());
    }

    private static void checkQueries(DefaultMQProducer producer, String topic, Map<String, SendResult> sent)
        throws Exception {
        long end = System.currentTimeMillis() + 60_000;
        for (Map.Entry<String, SendResult> e : sent.entrySet()) {
            QueryResult byKey = producer.queryMessage(topic, "k" + e.getKey(), 32, 0, end);
            assertEquals(List.of(e.getKey()), bodies(byKey), "queryMessage by key k" + e.getKey());
            MessageExt byUniq = producer.viewMessage(topic, e.getValue().getMsgId());
            assertEquals(e.getKey(), new String(byUniq.getBody(), StandardCharsets.UTF_8));
            MessageExt byOffset = producer.viewMessage(e.getValue().getOffsetMsgId());
            assertEquals(e.getKey(), new String(byOffset.getBody(), StandardCharsets.UTF_8));
        }
        QueryResult shared = producer.queryMessage(topic, "shared-key", 32, 0, end);
        assertEquals(List.of("multi-0", "multi-1", "multi-2"), bodies(shared));
        assertThrows(MQClientException.class, () -> producer.queryMessage(topic, "no-such-key", 32, 0, end));
    }

    @Test
    @Timeout(90)
    void queryAndViewMessagesSurviveAKill9(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        String topic = "QM_" + System.nanoTime();
        DefaultMQProducer producer = rmq.producer("qm_producer");
        Map<String, SendResult> sent = RmqFast.sendSync(producer, topic, null, RmqFast.bodies("qm-", 0, 8));
        for (int i = 0; i < 3; i++) {
            Message m = new Message(topic, ("multi-" + i).getBytes(StandardCharsets.UTF_8));
            m.setKeys(Arrays.asList("multi-own-" + i, "shared-key"));
            RmqFast.assertSendOk("multi-" + i, producer.send(m));
        }
        checkQueries(producer, topic, sent);
        broker.kill9();
        broker.start();
        // The first query may race the restart (the killed process's port is released
        // asynchronously, so readiness can be seen early); the 4.9.8 client then waits out its
        // whole 12 s latch after a connect failure (MQAdminImpl.queryMessage never counts a
        // failed send down). Leave room for that.
        RmqFast.awaitUntil(java.time.Duration.ofSeconds(45), () -> {
            try {
                return producer.queryMessage(topic, "kqm-0", 32, 0, System.currentTimeMillis()).getMessageList()
                    .size() == 1;
            } catch (Exception e) {
                return false;
            }
        }, () -> "queries answer after the restart");
        checkQueries(producer, topic, sent);
    }
}
