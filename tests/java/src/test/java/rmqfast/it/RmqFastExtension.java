package rmqfast.it;

import org.apache.rocketmq.remoting.protocol.RemotingCommand;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * Gives each test method its own {@link RmqFast} (parameter injection) and closes it afterwards:
 * clients shut down, processes stopped, and the tail of every process log printed if the test failed.
 */
public class RmqFastExtension implements BeforeEachCallback, AfterEachCallback, ParameterResolver {
    private static final ExtensionContext.Namespace NS = ExtensionContext.Namespace.create(RmqFastExtension.class);

    @Override
    public void beforeEach(ExtensionContext ctx) {
        String serType = System.getProperty("rocketmq.serialize.type", "");
        if (!serType.isEmpty() && !serType.equals(RemotingCommand.getSerializeTypeConfigInThisServer().name())) {
            throw new IllegalStateException("rocketmq.serialize.type=" + serType + " did not reach the client ("
                + RemotingCommand.getSerializeTypeConfigInThisServer() + ")");
        }
        String id = ctx.getRequiredTestClass().getSimpleName() + "." + ctx.getRequiredTestMethod().getName()
            + (serType.isEmpty() ? "" : "-" + serType);
        ctx.getStore(NS).put(RmqFast.class, new RmqFast(id.replaceAll("[^A-Za-z0-9._-]", "_")));
    }

    @Override
    public void afterEach(ExtensionContext ctx) {
        RmqFast rmq = ctx.getStore(NS).remove(RmqFast.class, RmqFast.class);
        if (rmq != null) {
            ctx.getExecutionException().ifPresent(e -> System.err.println("FAILED " + ctx.getDisplayName() + ": " + e));
            rmq.close(ctx.getExecutionException().isPresent());
        }
    }

    @Override
    public boolean supportsParameter(ParameterContext p, ExtensionContext ctx) {
        return p.getParameter().getType() == RmqFast.class;
    }

    @Override
    public Object resolveParameter(ParameterContext p, ExtensionContext ctx) {
        return ctx.getStore(NS).get(RmqFast.class, RmqFast.class);
    }
}
