package rmqfast.it;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Collectors;

import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Thread-safe record of consumed messages, keyed by body. Every test message has key "k" + body, and
 * {@link #add} checks that (and the topic) so a corrupted message shows up as a problem.
 */
public final class Received {
    private final String topic;
    private final Map<String, AtomicInteger> counts = new ConcurrentHashMap<>();
    private final Map<String, MessageExt> firstSeen = new ConcurrentHashMap<>();
    private final List<String> problems = new ArrayList<>();

    public Received(String topic) {
        this.topic = topic;
    }

    public void add(MessageExt m) {
        String body = new String(m.getBody(), StandardCharsets.UTF_8);
        if (!topic.equals(m.getTopic()) || !("k" + body).equals(m.getKeys())) {
            synchronized (problems) {
                problems.add("topic=" + m.getTopic() + " keys=" + m.getKeys() + " body=" + abbrev(body));
            }
        }
        counts.computeIfAbsent(body, b -> new AtomicInteger()).incrementAndGet();
        firstSeen.putIfAbsent(body, m);
    }

    public int distinct() {
        return counts.size();
    }

    public Set<String> bodies() {
        return new TreeSet<>(counts.keySet());
    }

    public MessageExt message(String body) {
        return firstSeen.get(body);
    }

    /** Bodies received more than once, as "body x n". */
    public List<String> duplicates() {
        return counts.entrySet().stream().filter(e -> e.getValue().get() > 1)
            .map(e -> e.getKey() + " x" + e.getValue().get()).sorted().collect(Collectors.toList());
    }

    /** Waits until every body in {@code expected} has been received. */
    public void awaitAll(Collection<String> expected, Duration timeout) {
        RmqFast.awaitUntil(timeout, () -> counts.keySet().containsAll(expected),
            () -> "received " + expected.stream().filter(counts::containsKey).count() + " of " + expected.size()
                + " expected messages on " + topic + "; first missing: " + missing(expected, 10));
    }

    public List<String> missing(Collection<String> expected, int limit) {
        return expected.stream().filter(b -> !counts.containsKey(b)).sorted().limit(limit).collect(Collectors.toList());
    }

    /** Asserts: exactly the expected bodies, no duplicates, no corrupted messages. */
    public void assertExactly(Collection<String> expected) {
        Set<String> unexpected = new TreeSet<>(counts.keySet());
        unexpected.removeAll(expected);
        List<String> dups = duplicates();
        synchronized (problems) {
            if (!problems.isEmpty()) {
                throw new AssertionError(problems.size() + " corrupted messages on " + topic + ", e.g. "
                    + problems.subList(0, Math.min(5, problems.size())));
            }
        }
        if (!unexpected.isEmpty()) {
            throw new AssertionError(unexpected.size() + " unexpected messages on " + topic + ", e.g. "
                + unexpected.stream().limit(10).map(Received::abbrev).collect(Collectors.toList()));
        }
        List<String> miss = missing(expected, 10);
        if (!miss.isEmpty()) {
            throw new AssertionError(expected.stream().filter(b -> !counts.containsKey(b)).count() + " messages missing on "
                + topic + ", e.g. " + miss);
        }
        if (!dups.isEmpty()) {
            throw new AssertionError(dups.size() + " messages consumed more than once on " + topic + ", e.g. "
                + dups.subList(0, Math.min(10, dups.size())));
        }
    }

    /** The client-side msgId (UNIQ_KEY) and offsetMsgId (store host + commit log offset) of a received message. */
    public static String[] ids(MessageExt m) {
        String offsetMsgId = m instanceof MessageClientExt ? ((MessageClientExt) m).getOffsetMsgId() : m.getMsgId();
        return new String[] {m.getMsgId(), offsetMsgId};
    }

    private static String abbrev(String s) {
        return s.length() > 60 ? s.substring(0, 60) + "..." : s;
    }
}
