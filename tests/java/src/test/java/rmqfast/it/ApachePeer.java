package rmqfast.it;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Apache RocketMQ 4.9.7 (name server, master, slave) started as processes from the Maven Central jars that
 * {@code mvn -f tools/bench/peer/pom.xml package} copies into tools/bench/peer/lib (scripts/java-tests.sh does
 * it; override the directory with -Drmqfast.apacheLib=...). JVM flags as docs/peer.md. The control cluster of
 * {@link MqAdminTest}: same cluster, broker, topic and group names as the rmq-fast cluster.
 */
final class ApachePeer implements AutoCloseable {
    private final Path lib;
    private final Path home;
    private final Path logDir;
    private final List<Process> procs = new ArrayList<>();
    final int namesrvPort = RmqFast.freePort();
    final int masterPort = RmqFast.freePort();
    final int slavePort = RmqFast.freePort();

    /** The jar directory, or null when it does not exist (the control cannot run). */
    static Path libDir() {
        Path lib = Paths.get(System.getProperty("rmqfast.apacheLib", "../../tools/bench/peer/lib")).toAbsolutePath()
            .normalize();
        try (var s = Files.list(lib)) {
            return s.anyMatch(p -> p.getFileName().toString().startsWith("rocketmq-broker-")) ? lib : null;
        } catch (IOException e) {
            return null;
        }
    }

    ApachePeer(Path lib, Path workDir, Path logDir) {
        this.lib = lib;
        this.home = workDir.resolve("apache-home");
        this.logDir = logDir;
        try {
            Files.createDirectories(home.resolve("conf"));
            Files.createDirectories(logDir);
            for (String n : List.of("namesrv", "broker", "tools")) {
                Files.writeString(home.resolve("conf/logback_" + n + ".xml"), "<configuration>\n"
                    + "  <appender name=\"F\" class=\"ch.qos.logback.core.FileAppender\">\n"
                    + "    <file>${user.home}/logs/" + n + ".log</file>\n"
                    + "    <encoder><pattern>%d %p %t - %m%n</pattern></encoder>\n  </appender>\n"
                    + "  <root level=\"WARN\"><appender-ref ref=\"F\"/></root>\n</configuration>\n");
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    String namesrvAddr() {
        return "127.0.0.1:" + namesrvPort;
    }

    /** Starts name server, master (ASYNC_MASTER) and slave; returns when all three accept connections. */
    void start(String cluster, String brokerName) {
        start(cluster, brokerName, null);
    }

    /**
     * With {@code plainAcl} non-null: a name server and an ACL master only (aclEnable=true, that text as
     * conf/plain_acl.yml of the broker's ROCKETMQ_HOME).
     */
    void start(String cluster, String brokerName, String plainAcl) {
        if (plainAcl != null) {
            try {
                Files.writeString(home.resolve("conf/plain_acl.yml"), plainAcl);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        Path ns = write("apache-namesrv", Map.of("listenPort", String.valueOf(namesrvPort)));
        launch("apache-namesrv", "org.apache.rocketmq.namesrv.NamesrvStartup", ns);
        RmqFast.awaitUntil(Duration.ofSeconds(60), () -> RmqFast.portOpen(namesrvPort), () -> "Apache name server");
        Map<String, String> master = broker(cluster, brokerName, masterPort, "0", "ASYNC_MASTER");
        if (plainAcl != null) {
            master.put("aclEnable", "true");
        }
        launch("apache-master", "org.apache.rocketmq.broker.BrokerStartup", write("apache-master", master));
        if (plainAcl == null) {
            launch("apache-slave", "org.apache.rocketmq.broker.BrokerStartup",
                write("apache-slave", broker(cluster, brokerName, slavePort, "1", "SLAVE")));
        }
        RmqFast.awaitUntil(Duration.ofSeconds(90),
            () -> RmqFast.portOpen(masterPort) && (plainAcl != null || RmqFast.portOpen(slavePort)),
            () -> "Apache master/slave (logs in " + logDir + ")");
    }

    private Map<String, String> broker(String cluster, String brokerName, int port, String id, String role) {
        Path store = home.getParent().resolve("apache-store-" + id);
        Map<String, String> c = new LinkedHashMap<>();
        c.put("brokerClusterName", cluster);
        c.put("brokerName", brokerName);
        c.put("brokerId", id);
        c.put("brokerRole", role);
        c.put("flushDiskType", "ASYNC_FLUSH");
        c.put("brokerIP1", "127.0.0.1");
        c.put("listenPort", String.valueOf(port));
        c.put("haListenPort", String.valueOf(port + 1));
        c.put("namesrvAddr", namesrvAddr());
        c.put("storePathRootDir", store.toString());
        c.put("storePathCommitLog", store.resolve("commitlog").toString());
        c.put("mapedFileSizeCommitLog", String.valueOf(64 * 1024 * 1024));
        c.put("autoCreateTopicEnable", "true");
        c.put("autoCreateSubscriptionGroup", "true");
        c.put("defaultTopicQueueNums", "4");
        c.put("diskMaxUsedSpaceRatio", "95");
        c.put("traceTopicEnable", "true");
        return c;
    }

    private Path write(String name, Map<String, String> props) {
        StringBuilder sb = new StringBuilder();
        props.forEach((k, v) -> sb.append(k).append('=').append(v).append('\n'));
        Path f = home.resolve(name + ".properties");
        try {
            Files.writeString(f, sb.toString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return f;
    }

    private void launch(String name, String mainClass, Path conf) {
        Path userHome = home.getParent().resolve("apache-user-" + name);
        List<String> cmd = new ArrayList<>(List.of(Paths.get(System.getProperty("java.home"), "bin", "java").toString(),
            "-server", "-Xms128m", "-Xmx256m", "-XX:+UseG1GC", "-XX:-OmitStackTraceInFastThrow",
            "-XX:MaxDirectMemorySize=256m", "-Duser.home=" + userHome, "-Drocketmq.home.dir=" + home,
            "-Dtls.server.mode=disabled", "--add-opens=java.base/java.nio=ALL-UNNAMED",
            "--add-opens=java.base/jdk.internal.ref=ALL-UNNAMED", "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED",
            "-cp", lib + "/*", mainClass, "-c", conf.toString()));
        try {
            procs.add(new ProcessBuilder(cmd).redirectOutput(logDir.resolve(name + ".out").toFile())
                .redirectError(logDir.resolve(name + ".err").toFile()).start());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + cmd, e);
        }
    }

    @Override
    public void close() {
        for (int i = procs.size() - 1; i >= 0; i--) { // slave, master, then the name server
            Process p = procs.get(i);
            p.destroy();
            try {
                if (!p.waitFor(15, TimeUnit.SECONDS)) {
                    p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }
}
