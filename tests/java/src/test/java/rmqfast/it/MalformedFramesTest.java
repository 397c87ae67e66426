package rmqfast.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.apache.rocketmq.remoting.protocol.SerializeType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.extension.ExtendWith;

/**
 * Hand-made RocketMQ remoting frames: [int32 length][int32 (serType<<24)|headerLen][header][body].
 * Garbage must only cost the offending connection; the server keeps serving everyone else.
 */
@ExtendWith(RmqFastExtension.class)
class MalformedFramesTest {
    static final int REQUEST_CODE_NOT_SUPPORTED = 3;

    @Test
    @Timeout(90)
    void brokerSurvivesMalformedFrames(RmqFast rmq) throws Exception {
        rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        attack(broker.port);
        assertStillServing(rmq);
    }

    @Test
    @Timeout(90)
    void nameServerSurvivesMalformedFrames(RmqFast rmq) throws Exception {
        RmqFast.Proc ns = rmq.startNamesrv();
        RmqFast.Proc broker = rmq.startBroker("broker-a");
        attack(ns.port);
        assertTrue(rmq.isRegistered(ns, broker), "name server lost the broker's registration");
        assertStillServing(rmq);
    }

    private static void attack(int port) throws IOException {
        // 1. truncated frame, then close
        try (Socket s = connect(port)) {
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            out.writeInt(100);
            out.write(new byte[10]);
            out.flush();
        }

        // 2. absurd frame length
        ByteBuffer huge = ByteBuffer.allocate(24).putInt(0x7fffffff).putInt(16);
        expectClosed(port, huge.array(), "frame length 0x7fffffff");

        // 3. header that is not JSON
        expectClosedOrError(port, frame(0, "{\"code\":9999,,, this is not json".getBytes(StandardCharsets.UTF_8)),
            "non-JSON header");

        // 4. header length larger than the frame
        ByteBuffer lying = ByteBuffer.allocate(24).putInt(20).putInt(1000);
        expectClosed(port, lying.array(), "header length 1000 in a 20-byte frame");

        // 5. unknown request code, JSON header then binary (ROCKETMQ) header on the same connection.
        //    Stricter than Apache RocketMQ 4.9.x's name server, whose default processor silently drops
        //    unknown codes (no response at all); its broker does answer 3.
        try (Socket s = connect(port)) {
            String json = "{\"code\":9999,\"flag\":0,\"language\":\"JAVA\",\"opaque\":1,"
                + "\"serializeTypeCurrentRPC\":\"JSON\",\"version\":409}";
            write(s, frame(0, json.getBytes(StandardCharsets.UTF_8)));
            RemotingCommand r = readResponse(s);
            assertTrue(r.isResponseType(), "reply to code 9999 is not marked as a response: " + r);
            assertEquals(REQUEST_CODE_NOT_SUPPORTED, r.getCode(), "reply to code 9999: " + r);
            assertEquals(1, r.getOpaque(), "reply to code 9999 must echo the opaque: " + r);

            RemotingCommand bin = RemotingCommand.createRequestCommand(9999, null);
            bin.setSerializeTypeCurrentRPC(SerializeType.ROCKETMQ);
            bin.setOpaque(2);
            ByteBuffer encoded = bin.encode();
            byte[] bytes = new byte[encoded.remaining()];
            encoded.get(bytes);
            write(s, bytes);
            RemotingCommand r2 = readResponse(s);
            assertEquals(REQUEST_CODE_NOT_SUPPORTED, r2.getCode(), "reply to code 9999 (binary header): " + r2);
            assertEquals(2, r2.getOpaque(), "reply to code 9999 (binary header) must echo the opaque: " + r2);
        }
    }

    /** After the attack: a fresh producer (new connections to name server and broker) can send. */
    private static void assertStillServing(RmqFast rmq) {
        DefaultMQProducer producer = rmq.producer("PG_AFTER_GARBAGE");
        RmqFast.sendSync(producer, "AFTER_GARBAGE_" + System.nanoTime(), null, List.of("still-alive"));
    }

    static byte[] frame(int serType, byte[] header) {
        return ByteBuffer.allocate(8 + header.length).putInt(4 + header.length)
            .putInt((serType << 24) | header.length).put(header).array();
    }

    private static Socket connect(int port) throws IOException {
        Socket s = new Socket();
        s.connect(new InetSocketAddress("127.0.0.1", port), 3000);
        s.setSoTimeout(5000);
        return s;
    }

    private static void write(Socket s, byte[] bytes) throws IOException {
        s.getOutputStream().write(bytes);
        s.getOutputStream().flush();
    }

    /** The server must close the connection within 5 s (any bytes it sends first are ignored). */
    private static void expectClosed(int port, byte[] payload, String what) throws IOException {
        try (Socket s = connect(port)) {
            try {
                write(s, payload);
            } catch (IOException e) {
                return; // already closed by the server
            }
            InputStream in = s.getInputStream();
            byte[] buf = new byte[4096];
            try {
                while (in.read(buf) >= 0) {
                    // drain
                }
            } catch (SocketTimeoutException e) {
                throw new AssertionError("connection still open 5 s after sending " + what);
            } catch (IOException e) {
                // reset: closed too
            }
        }
    }

    /** Either the connection is closed, or an error response (code != 0) arrives. */
    private static void expectClosedOrError(int port, byte[] payload, String what) throws IOException {
        try (Socket s = connect(port)) {
            try {
                write(s, payload);
            } catch (IOException e) {
                return;
            }
            RemotingCommand r;
            try {
                r = readResponse(s);
            } catch (EOFException e) {
                return;
            } catch (SocketTimeoutException e) {
                throw new AssertionError("neither a response nor a close within 5 s of sending " + what);
            } catch (IOException e) {
                return; // reset
            }
            assertNotEquals(0, r.getCode(), "server answered SUCCESS to " + what + ": " + r);
        }
    }

    private static RemotingCommand readResponse(Socket s) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        int len = in.readInt();
        assertTrue(len >= 4 && len < 16 * 1024 * 1024, "bad response frame length " + len);
        byte[] body = new byte[len];
        in.readFully(body);
        try {
            return RemotingCommand.decode(ByteBuffer.wrap(body));
        } catch (Exception e) {
            throw new AssertionError("undecodable response frame: " + e, e);
        }
    }
}
