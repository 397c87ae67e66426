package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/** An invalid config value makes the process exit non-zero with a message naming the key and the file. */
@ExtendWith(RmqFastExtension.class)
class BadConfigTest {

    @Test
    @Timeout(30)
    void brokerRejectsUnknownBrokerRole(RmqFast rmq) throws Exception {
        expectRejected(rmq, "broker", "brokerRole", "MASTR");
    }

    @Test
    @Timeout(30)
    void brokerRejectsNonNumericListenPort(RmqFast rmq) throws Exception {
        expectRejected(rmq, "broker", "listenPort", "abc");
    }

    @Test
    @Timeout(30)
    void namesrvRejectsNonNumericListenPort(RmqFast rmq) throws Exception {
        expectRejected(rmq, "namesrv", "listenPort", "abc");
    }

    private static void expectRejected(RmqFast rmq, String mode, String key, String value) throws Exception {
        int port = RmqFast.freePort();
        Map<String, String> config = mode.equals("broker")
            // otherwise valid; the name server address points at a closed port (must not matter)
            ? rmq.brokerConfig("broker-bad", port, "namesrvAddr", "127.0.0.1:" + RmqFast.freePort(), key, value)
            : Map.of("listenPort", value);
        Path file = rmq.writeProperties("bad-" + mode + "-" + key, config);
        RmqFast.Proc p = rmq.launch(mode + "-bad", port, null, List.of(mode, "-c", file.toString()));
        p.expectExit();
        String what = "`rmq-fast " + mode + " -c " + file + "` with " + key + "=" + value;
        if (!p.process().waitFor(10, TimeUnit.SECONDS)) {
            p.kill9();
            throw new AssertionError(what + " was still running after 10 s");
        }
        String stderr = p.stderr();
        assertNotEquals(0, p.process().exitValue(), what + " exited with 0; stderr: " + stderr);
        assertTrue(stderr.contains(key), what + ": stderr does not mention " + key + ": " + stderr);
        assertTrue(stderr.contains(file.getFileName().toString()),
            what + ": stderr does not mention the file " + file.getFileName() + ": " + stderr);
    }
}
