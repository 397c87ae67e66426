/*
 * Exact-set client of the two-host cluster test (tests/cluster/seed-2hosts.sh), written
 * against the official org.apache.rocketmq:rocketmq-client 4.9.8 (the seed's clients).
 * Run in source-launcher mode: java -cp <tests/java runtime classpath> ClusterClient.java ...
 *
 * produce <namesrv> <topic> <prefix> <seconds> <acked-file> [threads] [rate-per-thread]
 *   Sends keyed messages (key = body = prefix-thread-seq) for <seconds>. Every send that
 *   the broker acknowledged with SEND_OK is appended to <acked-file> as
 *   "brokerName<TAB>key<TAB>ackEpochMillis<TAB>queueOffset<TAB>storeHost" (flushed per line), so a producer killed mid-run still leaves an exact acked set.
 *   storeHost is the ip:port of the broker that stored it (from the offset message id): the
 *   failover test checks with it that only one master of a group acknowledged at a time.
 *   Anything else (exception, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE...) is not acked.
 *   Prints one summary line: {"attempts":..,"acked":..,"ackedByBroker":{..},"failures":{..}}.
 *
 * probe <namesrv> <topic> <prefix> <seconds> <acked-file> <brokerName> <ip:port> [interval-ms]
 *   Sends straight to one broker address (not through the route: the client's internal
 *   MQClientAPIImpl.sendMessage, as its send path does once it picked a queue), one message
 *   every interval (default 20 ms), each with a 1 s timeout, to queue seq % 4 of brokerName.
 *   Pointed at a slave, it measures when that broker starts acknowledging as the new master,
 *   whatever the clients' route refresh. Acks go to <acked-file> in produce's format (and are
 *   verified with the others); prints {"attempts":..,"acked":..,"firstAck":epochMillis|null}.
 *
 * verify <namesrv> <topic> <timeout-seconds> <acked-file>...
 *   Pulls every queue of <topic> from its min offset to the end (DefaultMQPullConsumer, a
 *   fresh group, no offset commits), repeating until every acked key was read or the timeout
 *   passes. With a master down the client reads from its slave (route fallback, as the
 *   Java client does). Exit 0 when all acked keys were read, 1 otherwise (missing keys are
 *   printed). Duplicates are allowed (at-least-once) and reported.
 *
 * cluster <namesrv-addr> <timeout-seconds> <expectation>...
 *   Polls GET_BROKER_CLUSTER_INFO on ONE name server until every expectation holds:
 *   "broker-a:0=10.231.0.1:10911" (that id registered at that address), "!broker-a:0"
 *   (not registered), "broker-a:+=10.231.0.2:11011" (registered at that address under some
 *   id other than 0, i.e. as a slave, whatever id a controller gave it). Exit 0 when they all hold before the timeout, 1 otherwise.
 *
 * Contract with the script: exit codes 0 (ok) / 1 (check failed) / 2 (usage).
 */

import java.io.BufferedWriter;
import java.io.FileWriter;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.rocketmq.client.consumer.DefaultMQPullConsumer;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.impl.CommunicationMode;
import org.apache.rocketmq.client.impl.producer.DefaultMQProducerImpl;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientIDSetter;
import org.apache.rocketmq.common.message.MessageDecoder;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;
import org.apache.rocketmq.common.protocol.body.ClusterInfo;
import org.apache.rocketmq.common.protocol.header.SendMessageRequestHeader;
import org.apache.rocketmq.common.protocol.route.BrokerData;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

public class ClusterClient {
    public static void main(String[] args) throws Exception {
        System.setProperty("rocketmq.client.logUseSlf4j", "false");
        System.setProperty("rocketmq.client.logLevel", "WARN");
        System.setProperty("rocketmq.client.logRoot", System.getProperty("java.io.tmpdir"));
        if (args.length >= 5 && args[0].equals("produce")) {
            int threads = args.length > 6 ? Integer.parseInt(args[6]) : 2;
            int rate = args.length > 7 ? Integer.parseInt(args[7]) : 100;
            produce(args[1], args[2], args[3], Double.parseDouble(args[4]), Path.of(args[5]),
                threads, rate);
            System.exit(0);
        } else if (args.length >= 5 && args[0].equals("verify")) {
            List<Path> files = new ArrayList<>();
            for (int i = 4; i < args.length; i++) {
                files.add(Path.of(args[i]));
            }
            boolean ok = verify(args[1], args[2], Double.parseDouble(args[3]), files);
            System.exit(ok ? 0 : 1);
        }
        else if (args.length >= 8 && args[0].equals("probe")) {
            long interval = args.length > 8 ? Long.parseLong(args[8]) : 20;
            probe(args[1], args[2], args[3], Double.parseDouble(args[4]), Path.of(args[5]),
                args[6], args[7], interval);
            System.exit(0);
        }
        else if (args.length >= 3 && args[0].equals("cluster")) {
            List<String> expectations = List.of(args).subList(3, args.length);
            boolean ok = awaitCluster(args[1], Double.parseDouble(args[2]), expectations);
            System.exit(ok ? 0 : 1);
        }
        System.err.println("usage: produce <ns> <topic> <prefix> <secs> <acked-file> [threads] [rate]"
            + " | probe <ns> <topic> <prefix> <secs> <acked-file> <brokerName> <ip:port> [interval-ms]"
            + " | verify <ns> <topic> <timeout-secs> <acked-file>...");
        System.exit(2);
    }

    static void produce(String ns, String topic, String prefix, double seconds, Path out,
                        int threads, int ratePerThread) throws Exception {
        DefaultMQProducer producer = new DefaultMQProducer("seed_cluster_pg_" + prefix);
        producer.setNamesrvAddr(ns);
        producer.setInstanceName(prefix + "-" + ProcessHandle.current().pid());
        producer.setSendMsgTimeout(3000);
        producer.setRetryTimesWhenSendFailed(2);
        // The seed test isolates a failed broker (the client then avoids it for up to 10 min); the
        // failover test sets CLUSTER_CLIENT_LATENCY_FAULT=false, the Java client's default, so the
        // producer writes to the failed group again as soon as its new master is in the route.
        producer.setSendLatencyFaultEnable(!"false".equals(System.getenv("CLUSTER_CLIENT_LATENCY_FAULT")));
        producer.setPollNameServerInterval(1000);
        producer.setHeartbeatBrokerInterval(1000);
        producer.start();
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        AtomicLong attempts = new AtomicLong();
        Map<String, Long> ackedBy = new TreeMap<>();
        Map<String, Long> failures = new TreeMap<>();
        try (BufferedWriter writer = new BufferedWriter(new FileWriter(out.toFile(), true))) {
            List<Thread> workers = new ArrayList<>();
            for (int t = 0; t < threads; t++) {
                final int thread = t;
                Thread worker = new Thread(() -> sendLoop(producer, topic, prefix + "-" + thread,
                    deadline, ratePerThread, writer, attempts, ackedBy, failures));
                worker.start();
                workers.add(worker);
            }
            for (Thread worker : workers) {
                worker.join();
            }
        }
        producer.shutdown();
        long acked = ackedBy.values().stream().mapToLong(Long::longValue).sum();
        System.out.println("{\"attempts\":" + attempts.get() + ",\"acked\":" + acked
            + ",\"ackedByBroker\":" + json(ackedBy) + ",\"failures\":" + json(failures) + "}");
    }

    static void sendLoop(DefaultMQProducer producer, String topic, String keyPrefix, long deadline,
                         int rate, BufferedWriter writer, AtomicLong attempts,
                         Map<String, Long> ackedBy, Map<String, Long> failures) {
        long periodNanos = rate > 0 ? 1_000_000_000L / rate : 0;
        long next = System.nanoTime();
        for (long seq = 0; System.nanoTime() < deadline; seq++) {
            String key = keyPrefix + "-" + seq;
            Message message = new Message(topic, "seed", key, key.getBytes(StandardCharsets.UTF_8));
            attempts.incrementAndGet();
            String failure = null;
            try {
                SendResult result = producer.send(message);
                if (result.getSendStatus() == SendStatus.SEND_OK) {
                    String broker = result.getMessageQueue().getBrokerName();
                    synchronized (writer) {
                        writer.write(broker + "\t" + key + "\t" + System.currentTimeMillis()
                            + "\t" + result.getQueueOffset() + "\t" + storeHost(result) + "\n");
                        writer.flush();
                        ackedBy.merge(broker, 1L, Long::sum);
                    }
                } else {
                    failure = result.getSendStatus().name();
                }
            } catch (Exception e) {
                failure = e.getClass().getSimpleName();
            }
            if (failure != null) {
                synchronized (writer) {
                    failures.merge(failure, 1L, Long::sum);
                }
            }
            next += periodNanos;
            long pause = next - System.nanoTime();
            if (pause > 0) {
                sleepNanos(pause);
            } else if (failure != null) {
                sleepNanos(50_000_000L);
                next = System.nanoTime();
            }
        }
    }

    static void probe(String ns, String topic, String prefix, double seconds, Path out,
                      String brokerName, String addr, long intervalMs) throws Exception {
        DefaultMQProducer producer = new DefaultMQProducer("seed_cluster_probe_" + prefix);
        producer.setNamesrvAddr(ns);
        producer.setInstanceName(prefix + "-probe-" + ProcessHandle.current().pid());
        producer.start();
        DefaultMQProducerImpl impl = producer.getDefaultMQProducerImpl();
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        long attempts = 0;
        long acked = 0;
        Long firstAck = null;
        try (BufferedWriter writer = new BufferedWriter(new FileWriter(out.toFile(), true))) {
            for (long seq = 0; System.nanoTime() < deadline; seq++) {
                long started = System.nanoTime();
                String key = prefix + "-probe-" + seq;
                Message message = new Message(topic, "seed", key, key.getBytes(StandardCharsets.UTF_8));
                MessageClientIDSetter.setUniqID(message);
                SendMessageRequestHeader header = new SendMessageRequestHeader();
                header.setProducerGroup(producer.getProducerGroup());
                header.setTopic(topic);
                header.setDefaultTopic(producer.getCreateTopicKey());
                header.setDefaultTopicQueueNums(producer.getDefaultTopicQueueNums());
                header.setQueueId((int) (seq % 4));
                header.setSysFlag(0);
                header.setBornTimestamp(System.currentTimeMillis());
                header.setFlag(message.getFlag());
                header.setProperties(MessageDecoder.messageProperties2String(message.getProperties()));
                header.setReconsumeTimes(0);
                header.setUnitMode(false);
                header.setBatch(false);
                attempts++;
                try {
                    SendResult result = impl.getmQClientFactory().getMQClientAPIImpl().sendMessage(
                        addr, brokerName, message, header, 1000, CommunicationMode.SYNC, null, impl);
                    if (result != null && result.getSendStatus() == SendStatus.SEND_OK) {
                        long now = System.currentTimeMillis();
                        writer.write(brokerName + "\t" + key + "\t" + now + "\t"
                            + result.getQueueOffset() + "\t" + storeHost(result) + "\n");
                        writer.flush();
                        acked++;
                        if (firstAck == null) {
                            firstAck = now;
                        }
                    }
                } catch (Exception e) {
                    // Not master (yet), unreachable or timed out: not acknowledged.
                }
                long pause = intervalMs * 1_000_000L - (System.nanoTime() - started);
                if (pause > 0) {
                    sleepNanos(pause);
                }
            }
        }
        producer.shutdown();
        System.out.println("{\"attempts\":" + attempts + ",\"acked\":" + acked
            + ",\"firstAck\":" + firstAck + "}");
    }

    static boolean verify(String ns, String topic, double timeoutSecs, List<Path> files)
        throws Exception {
        Map<String, String> expected = new HashMap<>();
        for (Path file : files) {
            for (String line : Files.readAllLines(file)) {
                String[] parts = line.split("\t");
                if (parts.length >= 2) {
                    expected.put(parts[1], parts[0]);
                }
            }
        }
        long deadline = System.nanoTime() + (long) (timeoutSecs * 1e9);
        Set<String> missing = new HashSet<>(expected.keySet());
        long duplicates = 0;
        long read = 0;
        for (int round = 0; ; round++) {
            Map<String, Integer> seen = new HashMap<>();
            try {
                read = readAll(ns, topic, "seed_cluster_verify_" + System.nanoTime(), seen);
            } catch (Exception e) {
                System.err.println("verify round " + round + ": " + e);
            }
            missing.removeIf(seen::containsKey);
            duplicates = seen.values().stream().filter(n -> n > 1).count();
            if (missing.isEmpty() || System.nanoTime() > deadline) {
                break;
            }
            System.err.println("verify round " + round + ": " + missing.size() + " acked key(s)"
                + " not read yet, retrying");
            sleepNanos(1_000_000_000L);
        }
        Map<String, Long> missingBy = new TreeMap<>();
        for (String key : missing) {
            missingBy.merge(expected.get(key), 1L, Long::sum);
        }
        System.out.println("{\"acked\":" + expected.size() + ",\"readRecords\":" + read
            + ",\"missing\":" + missing.size() + ",\"missingByBroker\":" + json(missingBy)
            + ",\"duplicateKeys\":" + duplicates + "}");
        missing.stream().sorted().limit(10).forEach(key ->
            System.out.println("MISSING " + expected.get(key) + " " + key));
        return missing.isEmpty();
    }

    /** Reads every queue of the topic from its first offset; returns the records read. */
    static long readAll(String ns, String topic, String group, Map<String, Integer> seen)
        throws Exception {
        DefaultMQPullConsumer consumer = new DefaultMQPullConsumer(group);
        consumer.setNamesrvAddr(ns);
        consumer.setInstanceName(group);
        long records = 0;
        consumer.start();
        try {
            for (MessageQueue queue : consumer.fetchSubscribeMessageQueues(topic)) {
                records += readQueue(consumer, queue, seen);
            }
        } finally {
            consumer.shutdown();
        }
        return records;
    }

    static long readQueue(DefaultMQPullConsumer consumer, MessageQueue queue,
                          Map<String, Integer> seen) throws Exception {
        long offset = 0;
        long records = 0;
        for (int empty = 0; empty < 2; ) {
            PullResult result = consumer.pull(queue, "*", offset, 32, 3000);
            if (result.getPullStatus() == PullStatus.FOUND) {
                for (MessageExt message : result.getMsgFoundList()) {
                    seen.merge(message.getKeys(), 1, Integer::sum);
                    records++;
                }
            } else if (result.getPullStatus() == PullStatus.NO_NEW_MSG
                || result.getPullStatus() == PullStatus.NO_MATCHED_MSG) {
                empty++;
            } else if (result.getNextBeginOffset() == offset) {
                empty++;
            }
            offset = Math.max(offset, result.getNextBeginOffset());
        }
        return records;
    }

    static boolean awaitCluster(String ns, double timeoutSecs, List<String> expectations)
        throws Exception {
        DefaultMQAdminExt admin = new DefaultMQAdminExt(3000);
        admin.setNamesrvAddr(ns);
        admin.setInstanceName("seed_cluster_admin_" + System.nanoTime());
        admin.start();
        long deadline = System.nanoTime() + (long) (timeoutSecs * 1e9);
        String unmet = null;
        Map<String, String> registered = new TreeMap<>();
        try {
            while (System.nanoTime() < deadline) {
                registered.clear();
                try {
                    ClusterInfo info = admin.examineBrokerClusterInfo();
                    for (BrokerData broker : info.getBrokerAddrTable().values()) {
                        broker.getBrokerAddrs().forEach((id, addr) ->
                            registered.put(broker.getBrokerName() + ":" + id, addr));
                    }
                    unmet = firstUnmet(expectations, registered);
                } catch (Exception e) {
                    unmet = "cluster info: " + e;
                }
                if (unmet == null) {
                    System.out.println("cluster on " + ns + ": " + registered);
                    return true;
                }
                sleepNanos(500_000_000L);
            }
        } finally {
            admin.shutdown();
        }
        System.out.println("cluster on " + ns + " not as expected (" + unmet + "): " + registered);
        return false;
    }

    /** ip:port of the broker that stored the message, from its offset message id; "?" if absent. */
    static String storeHost(SendResult result) {
        try {
            InetSocketAddress host = (InetSocketAddress) MessageDecoder.decodeMessageId(result.getOffsetMsgId()).getAddress();
            return host.getAddress().getHostAddress() + ":" + host.getPort();
        } catch (Exception e) {
            return "?";
        }
    }

    static String firstUnmet(List<String> expectations, Map<String, String> registered) {
        for (String expectation : expectations) {
            if (expectation.contains(":+=")) {
                String[] parts = expectation.split(":\\+=", 2);
                boolean found = registered.entrySet().stream().anyMatch(e ->
                    e.getKey().startsWith(parts[0] + ":") && !e.getKey().equals(parts[0] + ":0")
                        && e.getValue().equals(parts[1]));
                if (!found) {
                    return expectation;
                }
            } else if (expectation.startsWith("!")) {
                if (registered.containsKey(expectation.substring(1))) {
                    return expectation;
                }
            } else {
                String[] parts = expectation.split("=", 2);
                if (parts.length != 2 || !parts[1].equals(registered.get(parts[0]))) {
                    return expectation;
                }
            }
        }
        return null;
    }

    static String json(Map<String, Long> map) {
        StringBuilder out = new StringBuilder("{");
        for (Map.Entry<String, Long> entry : map.entrySet()) {
            if (out.length() > 1) {
                out.append(',');
            }
            out.append('"').append(entry.getKey()).append("\":").append(entry.getValue());
        }
        return out.append('}').toString();
    }

    static void sleepNanos(long nanos) {
        try {
            Thread.sleep(nanos / 1_000_000L, (int) (nanos % 1_000_000L));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
