package rmqfast.it;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import java.util.function.Supplier;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import org.apache.rocketmq.client.ClientConfig;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.producer.SendStatus;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.protocol.RequestCode;
import org.apache.rocketmq.common.protocol.ResponseCode;
import org.apache.rocketmq.common.protocol.body.ClusterInfo;
import org.apache.rocketmq.common.protocol.route.BrokerData;
import org.apache.rocketmq.remoting.netty.NettyClientConfig;
import org.apache.rocketmq.remoting.netty.NettyRemotingClient;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;

/**
 * One test's worth of rmq-fast processes (name servers, brokers) plus the RocketMQ clients the test made.
 * Created and closed by {@link RmqFastExtension}; everything lives under target/it/&lt;test&gt; (configs, stores)
 * and target/proc-logs/&lt;test&gt; (stdout/stderr and logDir of every process).
 */
public final class RmqFast {
    public static final String CLUSTER = "TestCluster";
    public static final Duration READY_TIMEOUT = Duration.ofSeconds(20);

    private static final Set<Integer> USED_PORTS = new HashSet<>();
    private static final AtomicInteger CLIENT_SEQ = new AtomicInteger();

    private final Path bin;
    private final Path workDir;
    private final Path logDir;
    private final List<Proc> procs = new ArrayList<>();
    private final List<Proc> namesrvs = new ArrayList<>();
    private final List<Runnable> clientShutdowns = new ArrayList<>();
    private NettyRemotingClient remoting;

    RmqFast(String testId) {
        bin = Paths.get(System.getProperty("rmqfast.bin", "../../target/release/rmq-fast")).toAbsolutePath().normalize();
        if (!Files.isRegularFile(bin) || !Files.isExecutable(bin)) {
            throw new IllegalStateException("rmq-fast binary not found or not executable at " + bin
                + " (build it with `cargo build --release -p rmq-fast`, or pass -Drmqfast.bin=/path/to/rmq-fast)");
        }
        Path target = Paths.get("target").toAbsolutePath();
        workDir = target.resolve("it").resolve(testId);
        logDir = target.resolve("proc-logs").resolve(testId);
        deleteRecursively(workDir);
        deleteRecursively(logDir);
        try {
            Files.createDirectories(workDir);
            Files.createDirectories(logDir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** This test's scratch directory (config files, stores, an ACL home). */
    public Path workDir() {
        return workDir;
    }

    /** Shuts {@code client} down when the test ends (for clients a test builds itself). */
    public void closeLater(Runnable shutdown) {
        clientShutdowns.add(shutdown);
    }

    // ------------------------------------------------------------------ processes

    /** A started rmq-fast process. */
    public final class Proc {
        public final String name;
        public final int port;
        final List<String> command;
        final String brokerName; // null for name servers
        Process process;
        int generation;
        boolean expectedDown;

        Proc(String name, int port, List<String> command, String brokerName) {
            this.name = name;
            this.port = port;
            this.command = command;
            this.brokerName = brokerName;
        }

        public String addr() {
            return "127.0.0.1:" + port;
        }

        public boolean isAlive() {
            return process.isAlive();
        }

        public Process process() {
            return process;
        }

        /** stderr of the current incarnation. */
        public String stderr() {
            return readString(logDir.resolve(logName() + ".err"));
        }

        String logName() {
            return generation == 0 ? name : name + "-restart" + generation;
        }

        void launch() {
            ProcessBuilder pb = new ProcessBuilder(command)
                .redirectOutput(logDir.resolve(logName() + ".out").toFile())
                .redirectError(logDir.resolve(logName() + ".err").toFile());
            try {
                process = pb.start();
            } catch (IOException e) {
                throw new UncheckedIOException("cannot start " + command, e);
            }
            expectedDown = false;
        }

        /** SIGTERM and wait for the exit; returns the exit code. Fails if it doesn't exit within 20 s. */
        public int stop() {
            expectedDown = true;
            process.destroy();
            try {
                if (!process.waitFor(20, TimeUnit.SECONDS)) {
                    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
                    throw new AssertionError(name + " did not exit within 20 s of SIGTERM (killed with -9)");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
            return process.exitValue();
        }

        /** kill -9 and wait for the exit. */
        public void kill9() {
            expectedDown = true;
            try {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        }

        /** Start the same command again (same config, same store) and wait until it is ready. */
        public void start() {
            if (process != null && process.isAlive()) {
                throw new IllegalStateException(name + " is still running");
            }
            generation++;
            launch();
            awaitReady(this);
        }

        /** Marks a process that is supposed to exit on its own (bad config tests). */
        public void expectExit() {
            expectedDown = true;
        }
    }

    public Proc startNamesrv() {
        String name = "namesrv-" + (namesrvs.size() + 1);
        int port = freePort();
        Path conf = writeProperties(name, Map.of("listenPort", String.valueOf(port),
            "logDir", logDir.resolve(name + "-logs").toString()));
        Proc p = launch(name, port, null, List.of("namesrv", "-c", conf.toString()));
        namesrvs.add(p);
        awaitReady(p);
        return p;
    }

    /** "127.0.0.1:p1;127.0.0.1:p2" for every name server started so far. */
    public String namesrvAddr() {
        return namesrvs.stream().map(Proc::addr).collect(Collectors.joining(";"));
    }

    /** Default broker config for this cluster; override or add keys with {@code overrides} (key, value, key, value...). */
    public Map<String, String> brokerConfig(String brokerName, int port, String... overrides) {
        Map<String, String> c = new LinkedHashMap<>();
        c.put("brokerClusterName", CLUSTER);
        c.put("brokerName", brokerName);
        c.put("brokerId", "0");
        c.put("namesrvAddr", namesrvAddr());
        c.put("brokerIP1", "127.0.0.1");
        c.put("listenPort", String.valueOf(port));
        c.put("storePathRootDir", workDir.resolve("store-" + brokerName).toString());
        c.put("autoCreateTopicEnable", "true");
        c.put("autoCreateSubscriptionGroup", "true");
        c.put("defaultTopicQueueNums", "4");
        c.put("flushDiskType", "ASYNC_FLUSH");
        c.put("brokerRole", "ASYNC_MASTER");
        c.put("mapedFileSizeCommitLog", String.valueOf(64 * 1024 * 1024));
        // Forced cleanup (disk past 85%, as on shared CI hosts) would delete what tests read.
        c.put("cleanFileForciblyEnable", "false");
        c.put("logDir", logDir.resolve(brokerName + "-logs").toString());
        for (int i = 0; i + 1 < overrides.length; i += 2) {
            c.put(overrides[i], overrides[i + 1]);
        }
        return c;
    }

    /** Starts a broker (namesrvAddr in its config file) and waits until every name server knows it. */
    public Proc startBroker(String brokerName, String... overrides) {
        int port = freePort();
        Path conf = writeProperties(brokerName, brokerConfig(brokerName, port, overrides));
        Proc p = launch(brokerName, port, brokerName, List.of("broker", "-c", conf.toString()));
        awaitReady(p);
        return p;
    }

    /** Same as {@link #startBroker} but passes the name server list with {@code -n} instead of the config file. */
    public Proc startBrokerWithFlagN(String brokerName, String... overrides) {
        int port = freePort();
        Map<String, String> config = brokerConfig(brokerName, port, overrides);
        String addr = config.remove("namesrvAddr");
        Path conf = writeProperties(brokerName, config);
        Proc p = launch(brokerName, port, brokerName, List.of("broker", "-c", conf.toString(), "-n", addr));
        awaitReady(p);
        return p;
    }

    /**
     * Starts a broker whose process, config file and store are named {@code procName} (e.g. a slave that shares
     * its master's brokerName) and waits until it accepts connections (a slave is not brokerId 0, so the
     * registration check of {@link #startBroker} does not apply).
     */
    public Proc startBrokerAs(String procName, String brokerName, String... overrides) {
        int port = freePort();
        Map<String, String> config = brokerConfig(brokerName, port, overrides);
        config.put("storePathRootDir", workDir.resolve("store-" + procName).toString());
        config.put("logDir", logDir.resolve(procName + "-logs").toString());
        for (int i = 0; i + 1 < overrides.length; i += 2) {
            config.put(overrides[i], overrides[i + 1]);
        }
        Path conf = writeProperties(procName, config);
        Proc p = launch(procName, port, null, List.of("broker", "-c", conf.toString()));
        awaitReady(p);
        return p;
    }

    /** Launches {@code rmq-fast <args>} without waiting for anything (port may be 0). */
    public Proc launch(String name, int port, String brokerName, List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(bin.toString());
        cmd.addAll(args);
        Proc p = new Proc(name, port, cmd, brokerName);
        procs.add(p);
        p.launch();
        return p;
    }

    /** Writes a Java .properties file (plain key=value lines, no escaping) into the work dir. */
    public Path writeProperties(String name, Map<String, String> props) {
        StringBuilder sb = new StringBuilder("# generated by rmq-fast java tests\n");
        props.forEach((k, v) -> sb.append(k).append('=').append(v).append('\n'));
        Path file = workDir.resolve(name + ".properties");
        try {
            Files.writeString(file, sb.toString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return file;
    }

    private void awaitReady(Proc p) {
        awaitUntil(READY_TIMEOUT, () -> {
            if (!p.isAlive()) {
                throw new AssertionError(p.name + " exited with code " + p.process.exitValue()
                    + " while starting; stderr:\n" + tail(logDir.resolve(p.logName() + ".err"), 50));
            }
            return portOpen(p.port);
        }, () -> p.name + " does not accept connections on port " + p.port);
        if (p.brokerName != null) {
            for (Proc ns : namesrvs) {
                if (ns.isAlive()) {
                    awaitUntil(READY_TIMEOUT, () -> isRegistered(ns, p),
                        () -> p.name + " (" + p.addr() + ") never showed up in the cluster info of " + ns.name);
                }
            }
        }
    }

    /** Asks one name server (GET_BROKER_CLUSTER_INFO) whether it knows the broker at its address. */
    public boolean isRegistered(Proc namesrv, Proc broker) {
        ClusterInfo info = clusterInfo(namesrv);
        if (info == null || info.getBrokerAddrTable() == null) {
            return false;
        }
        BrokerData bd = info.getBrokerAddrTable().get(broker.brokerName);
        Set<String> inCluster = info.getClusterAddrTable() == null ? null : info.getClusterAddrTable().get(CLUSTER);
        return bd != null && broker.addr().equals(bd.getBrokerAddrs().get(0L))
            && inCluster != null && inCluster.contains(broker.brokerName);
    }

    /** The address one name server lists for {@code brokerName}'s {@code brokerId}, or null. */
    public String brokerAddr(Proc namesrv, String brokerName, long brokerId) {
        ClusterInfo info = clusterInfo(namesrv);
        if (info == null || info.getBrokerAddrTable() == null) {
            return null;
        }
        BrokerData bd = info.getBrokerAddrTable().get(brokerName);
        return bd == null ? null : bd.getBrokerAddrs().get(brokerId);
    }

    private ClusterInfo clusterInfo(Proc namesrv) {
        try {
            if (remoting == null) {
                remoting = new NettyRemotingClient(new NettyClientConfig());
                remoting.start();
            }
            RemotingCommand req = RemotingCommand.createRequestCommand(RequestCode.GET_BROKER_CLUSTER_INFO, null);
            RemotingCommand resp = remoting.invokeSync(namesrv.addr(), req, 3000);
            if (resp.getCode() != ResponseCode.SUCCESS || resp.getBody() == null) {
                return null;
            }
            return ClusterInfo.decode(resp.getBody(), ClusterInfo.class);
        } catch (Exception e) {
            return null;
        }
    }

    // ------------------------------------------------------------------ clients

    /** Client settings every test uses: this cluster's name servers and short intervals. */
    public <T extends ClientConfig> T tune(T client) {
        client.setNamesrvAddr(namesrvAddr());
        client.setInstanceName("it-" + ProcessHandle.current().pid() + "-" + CLIENT_SEQ.incrementAndGet());
        client.setPollNameServerInterval(1000);
        client.setHeartbeatBrokerInterval(1000);
        client.setPersistConsumerOffsetInterval(1000);
        client.setVipChannelEnabled(false);
        return client;
    }

    public DefaultMQProducer producer(String group) {
        DefaultMQProducer p = tune(new DefaultMQProducer(group));
        p.setSendMsgTimeout(10_000);
        start(p::start);
        clientShutdowns.add(p::shutdown);
        return p;
    }

    /** A started push consumer (CONSUME_FROM_FIRST_OFFSET) that hands every message to {@code sink}. */
    public DefaultMQPushConsumer pushConsumer(String group, String topic, String subExpression, Received sink) {
        return pushConsumer(group, topic, subExpression, msgs -> {
            msgs.forEach(sink::add);
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        }, 20);
    }

    public DefaultMQPushConsumer pushConsumer(String group, String topic, String subExpression,
                                              Function<List<MessageExt>, ConsumeConcurrentlyStatus> listener,
                                              int threads) {
        DefaultMQPushConsumer c = tune(new DefaultMQPushConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setConsumeThreadMin(threads);
        c.setConsumeThreadMax(threads);
        start(() -> c.subscribe(topic, subExpression));
        c.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> listener.apply(msgs));
        start(c::start);
        clientShutdowns.add(c::shutdown);
        return c;
    }

    public DefaultLitePullConsumer litePullConsumer(String group, String topic) {
        DefaultLitePullConsumer c = tune(new DefaultLitePullConsumer(group));
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        c.setAutoCommit(true);
        c.setAutoCommitIntervalMillis(1000);
        c.setPollTimeoutMillis(1000);
        start(() -> c.subscribe(topic, "*"));
        start(c::start);
        clientShutdowns.add(c::shutdown);
        return c;
    }

    private interface ThrowingRunnable {
        void run() throws Exception;
    }

    private static void start(ThrowingRunnable r) {
        try {
            r.run();
        } catch (Exception e) {
            throw new AssertionError("client start failed: " + e, e);
        }
    }

    /** A test message: key "k" + body (checked by {@link Received}), optional tag. */
    public static Message message(String topic, String tags, String body) {
        Message m = new Message(topic, body.getBytes(StandardCharsets.UTF_8));
        m.setKeys("k" + body);
        if (tags != null) {
            m.setTags(tags);
        }
        return m;
    }

    /** prefix + i for i in [from, to). */
    public static List<String> bodies(String prefix, int from, int to) {
        return IntStream.range(from, to).mapToObj(i -> prefix + i).collect(Collectors.toList());
    }

    /** Sync-sends one message per body; asserts SEND_OK with both ids set. Returns body -> result. */
    public static Map<String, SendResult> sendSync(DefaultMQProducer producer, String topic, String tags,
                                                   List<String> bodies) {
        Map<String, SendResult> results = new LinkedHashMap<>();
        for (String body : bodies) {
            SendResult r;
            try {
                r = producer.send(message(topic, tags, body));
            } catch (Exception e) {
                throw new AssertionError("sync send of " + body + " to " + topic + " failed: " + e, e);
            }
            assertSendOk(body, r);
            results.put(body, r);
        }
        return results;
    }

    public static void assertSendOk(String body, SendResult r) {
        if (r == null || r.getSendStatus() != SendStatus.SEND_OK || r.getMsgId() == null
            || r.getOffsetMsgId() == null || r.getMessageQueue() == null) {
            throw new AssertionError("bad send result for " + body + ": " + r);
        }
    }

    // ------------------------------------------------------------------ lifecycle

    /** Called after each test: shuts clients down, stops processes, dumps logs if the test failed. */
    void close(boolean testFailed) {
        List<String> died = new ArrayList<>();
        for (Proc p : procs) {
            if (!p.expectedDown && !p.isAlive()) {
                died.add(p.name + " died unexpectedly (exit code " + p.process.exitValue() + ")");
            }
        }
        for (int i = clientShutdowns.size() - 1; i >= 0; i--) {
            try {
                clientShutdowns.get(i).run();
            } catch (RuntimeException ignored) {
                // best effort
            }
        }
        if (remoting != null) {
            remoting.shutdown();
        }
        for (int i = procs.size() - 1; i >= 0; i--) { // brokers first, then name servers
            Proc p = procs.get(i);
            if (p.isAlive()) {
                p.process.destroy();
                try {
                    if (!p.process.waitFor(15, TimeUnit.SECONDS)) {
                        p.process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                    }
                } catch (InterruptedException e) {
                    p.process.destroyForcibly();
                    Thread.currentThread().interrupt();
                }
            }
        }
        if (testFailed || !died.isEmpty()) {
            dumpLogs();
        } else {
            deleteRecursively(workDir); // stores are big; keep them only for failed tests
        }
        if (!died.isEmpty()) {
            throw new AssertionError(String.join("; ", died));
        }
    }

    /** Prints the last 50 lines of every file under this test's proc-logs dir. */
    void dumpLogs() {
        try (Stream<Path> files = Files.walk(logDir)) {
            files.filter(Files::isRegularFile).sorted().forEach(f ->
                System.err.println("===== last 50 lines of " + f + " =====\n" + tail(f, 50)));
        } catch (IOException e) {
            System.err.println("cannot list " + logDir + ": " + e);
        }
    }

    // ------------------------------------------------------------------ utilities

    /** Polls {@code cond} every 100 ms; fails with {@code what} after {@code timeout}. */
    public static void awaitUntil(Duration timeout, BooleanSupplier cond, Supplier<String> what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + timeout.toSeconds() + " s: " + what.get());
            }
            sleep(100);
        }
    }

    public static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    public static boolean portOpen(int port) {
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress("127.0.0.1", port), 500);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * A free port P such that P-2 .. P+1 are free too (a RocketMQ broker may also bind listenPort-2 for the
     * "VIP" channel and listenPort+1 for HA), never handed out twice in this JVM.
     */
    /**
     * A free port with its neighbours (listenPort-2 .. listenPort+1), chosen BELOW the kernel's
     * ephemeral range (32768+): a client retrying a dead server's ephemeral port can get that very
     * port as its own source port (a TCP self-connection) and keep the server from binding it again.
     */
    public static synchronized int freePort() {
        java.util.Random random = new java.util.Random();
        for (int attempt = 0; attempt < 500; attempt++) {
            int p = 20000 + random.nextInt(12000);
            List<Integer> range = Arrays.asList(p - 2, p - 1, p, p + 1);
            if (range.stream().anyMatch(USED_PORTS::contains) || !range.stream().allMatch(RmqFast::bindable)) {
                continue;
            }
            USED_PORTS.addAll(range);
            return p;
        }
        throw new IllegalStateException("no free port range found");
    }

    private static boolean bindable(int port) {
        try (ServerSocket s = new ServerSocket()) {
            s.setReuseAddress(false);
            s.bind(new InetSocketAddress("0.0.0.0", port));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    static String tail(Path f, int lines) {
        String s = readString(f);
        List<String> all = s.lines().collect(Collectors.toList());
        return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    }

    static String readString(Path f) {
        try {
            return new String(Files.readAllBytes(f), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "<cannot read " + f + ": " + e + ">";
        }
    }

    private static void deleteRecursively(Path dir) {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).map(Path::toFile).forEach(File::delete);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
