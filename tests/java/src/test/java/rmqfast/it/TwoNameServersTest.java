package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static rmqfast.it.RmqFast.bodies;

import java.time.Duration;
import java.util.List;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** A broker registered with two name servers keeps working when one of them goes away. */
@ExtendWith(RmqFastExtension.class)
class TwoNameServersTest {

    @Test
    @Timeout(120)
    void newTopicWorksAfterFirstNameServerStops(RmqFast rmq) {
        RmqFast.Proc ns1 = rmq.startNamesrv();
        RmqFast.Proc ns2 = rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBrokerWithFlagN("broker-a"); // -n "ns1;ns2"; waits for both registrations
        assertTrue(rmq.isRegistered(ns1, broker) && rmq.isRegistered(ns2, broker));

        // clients use "ns1;ns2"; warm the producer up so it holds a connection to one of them
        DefaultMQProducer producer = rmq.producer("PG_2NS");
        String warm = "WARM_" + System.nanoTime();
        RmqFast.sendSync(producer, warm, null, List.of("warm-0"));

        ns1.stop();
        RmqFast.sleep(3000); // several route polls (1 s): clients notice the dead name server

        String topic = "NS2_" + System.nanoTime();
        List<String> sent = bodies("ns-", 0, 200);
        RmqFast.sendSync(producer, topic, null, sent);
        RmqFast.awaitUntil(Duration.ofSeconds(10), () -> rmq.isRegistered(ns2, broker),
            () -> "broker no longer registered with the surviving name server");

        Received got = new Received(topic);
        rmq.pushConsumer("C_" + topic, topic, "*", got);
        got.awaitAll(sent, Duration.ofSeconds(60));
        RmqFast.sleep(1000);
        got.assertExactly(sent);
    }
}
