package rmqfast.it;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.stream.Collectors;

import org.apache.commons.cli.CommandLine;
import org.apache.commons.cli.Options;
import org.apache.commons.cli.PosixParser;
import org.apache.rocketmq.common.MixAll;
import org.apache.rocketmq.remoting.RPCHook;
import org.apache.rocketmq.srvutil.ServerUtil;
import org.apache.rocketmq.tools.command.MQAdminStartup;
import org.apache.rocketmq.tools.command.SubCommand;

/**
 * Runs the official mqadmin's sub-commands in this JVM: the command list of MQAdminStartup.initCommand, options
 * parsed as mqadmin parses them (without ServerUtil.parseCmdLine, which calls System.exit on a parse error),
 * stdout and stderr captured. One run at a time (System.out is process-wide).
 */
final class MqAdminRunner {
    /** What one command printed and whether it threw (or timed out). */
    record Result(String out, String err, Throwable thrown, boolean timedOut, boolean endless) {
        /**
         * The command failed: it threw, timed out (unless it is a command that runs until stopped), or printed an
         * exception (mqadmin catches and prints many).
         */
        boolean failed() {
            return thrown != null || (timedOut && !endless) || mentionsException(out) || mentionsException(err);
        }

        String why() {
            if (timedOut && !endless) {
                return "timed out";
            }
            if (thrown != null) {
                Throwable root = thrown;
                while (root.getCause() != null && root.getCause() != root) {
                    root = root.getCause();
                }
                return "threw " + thrown + (root != thrown ? " (root: " + root + ")" : "");
            }
            return "printed: " + firstExceptionLine(out + "\n" + err);
        }

        private static boolean mentionsException(String s) {
            return s.contains("Exception") || s.contains("\tat org.apache");
        }

        private static String firstExceptionLine(String s) {
            return s.lines().filter(l -> l.contains("Exception")).findFirst().orElse("?").trim();
        }
    }

    private static final Map<String, SubCommand> COMMANDS = commands();

    private static Map<String, SubCommand> commands() {
        try {
            MQAdminStartup.initCommand();
            var field = MQAdminStartup.class.getDeclaredField("subCommandList");
            field.setAccessible(true);
            @SuppressWarnings("unchecked")
            List<SubCommand> list = (List<SubCommand>) field.get(null);
            Map<String, SubCommand> byName = new java.util.LinkedHashMap<>();
            list.forEach(c -> byName.put(c.commandName(), c));
            return byName;
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("cannot read MQAdminStartup's command list", e);
        }
    }

    /** Every command name of this mqadmin, in its help order. */
    static List<String> commandNames() {
        return new ArrayList<>(COMMANDS.keySet());
    }

    private final ExecutorService pool = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "mqadmin");
        t.setDaemon(true);
        return t;
    });

    /** Runs {@code mqadmin args...} (args[0] is the command), giving up after {@code timeoutSec}. */
    synchronized Result run(List<String> args, int timeoutSec, boolean endless, RPCHook hook) {
        SubCommand known = COMMANDS.get(args.get(0));
        if (known == null) {
            throw new AssertionError("mqadmin has no command " + args.get(0));
        }
        SubCommand cmd; // a fresh instance per run: some commands keep their client in a field
        try {
            cmd = known.getClass().getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("cannot instantiate " + known.getClass(), e);
        }
        Options options = cmd.buildCommandlineOptions(ServerUtil.buildCommandlineOptions(new Options()));
        CommandLine line;
        try {
            line = new PosixParser().parse(options, args.subList(1, args.size()).toArray(new String[0]));
        } catch (Exception e) {
            throw new AssertionError("bad arguments for " + args + ": " + e);
        }
        if (line.hasOption('n')) {
            System.setProperty(MixAll.NAMESRV_ADDR_PROPERTY, line.getOptionValue('n'));
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        Throwable thrown = null;
        boolean timedOut = false;
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        java.util.Set<String> before = timestampDirs();
        Future<?> f = pool.submit(() -> {
            cmd.execute(line, options, hook);
            return null;
        });
        try {
            f.get(timeoutSec, TimeUnit.SECONDS);
        } catch (TimeoutException e) {
            timedOut = true;
            f.cancel(true);
        } catch (java.util.concurrent.ExecutionException e) {
            thrown = e.getCause();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            thrown = e;
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
            removeNewTimestampDirs(before);
        }
        return new Result(out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8), thrown,
            timedOut, endless);
    }

    /**
     * consumerStatus writes each client's running info to ./&lt;currentTimeMillis&gt;/&lt;clientId&gt;: the
     * working directory's all-digit directories, to remove the ones a command created.
     */
    private static java.util.Set<String> timestampDirs() {
        String[] names = new java.io.File(".").list((dir, name) -> name.matches("\\d{13}"));
        return names == null ? java.util.Set.of() : java.util.Set.of(names);
    }

    private static void removeNewTimestampDirs(java.util.Set<String> before) {
        for (String name : timestampDirs()) {
            if (!before.contains(name)) {
                java.io.File dir = new java.io.File(name);
                java.io.File[] files = dir.listFiles();
                if (files != null) {
                    for (java.io.File f : files) {
                        f.delete();
                    }
                }
                dir.delete();
            }
        }
    }

    void close() {
        pool.shutdownNow();
    }

    static String join(List<String> args) {
        return args.stream().collect(Collectors.joining(" "));
    }
}
