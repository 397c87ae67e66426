package rmqfast.it;

import com.alibaba.fastjson.JSON;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.apache.rocketmq.tools.admin.DefaultMQAdminExt;

/**
 * The admin requests the RocketMQ exporter (MetricsCollectTask) and dashboard (DashboardCollectTask) poll, called
 * through {@link DefaultMQAdminExt} as those tools call them: 106, 28, 300, 315, 202, 208, 328, 203, 206, 307, 317,
 * and 309 (the dashboard's "resend to consumer").
 * Each answer is reduced to its shape: the paths of its non-null fields (map keys that are data, such as queues,
 * topics and groups, become {@code *}; key names the tools read, such as the runtime-info table's, stay; {@code []} is a
 * list and {@code [*]} its elements, so an empty list differs from a filled one). A path in
 * Apache 4.9.7's answer missing from rmq-fast's is a field those tools would not find.
 */
final class AdminApiShapes {
    /** Fields whose map keys are data, not names. */
    static final Set<String> DATA_KEYED = Set.of("offsetTable", "brokerAddrs", "brokerAddrTable", "clusterAddrTable",
        "subscriptionTable", "mqTable", "statusTable", "data", "consumeStatsList[*]");

    private AdminApiShapes() {
    }

    interface Call {
        Object call() throws Exception;
    }

    /** Each request's answer as a shape, in request-code order; a failed call is the shape {@code ERROR: ...}. */
    static Map<String, Set<String>> shapes(DefaultMQAdminExt admin, String master, String topic, String group,
                                           String offsetMsgId) {
        Map<String, Set<String>> out = new LinkedHashMap<>();
        put(out, "106 examineBrokerClusterInfo", admin::examineBrokerClusterInfo);
        put(out, "28 fetchBrokerRuntimeStats", () -> admin.fetchBrokerRuntimeStats(master));
        put(out, "300 queryTopicConsumeByWho", () -> admin.queryTopicConsumeByWho(topic));
        put(out, "315 viewBrokerStatsData TOPIC_PUT_NUMS", () -> admin.viewBrokerStatsData(master, "TOPIC_PUT_NUMS", topic));
        put(out, "315 viewBrokerStatsData GROUP_GET_NUMS",
            () -> admin.viewBrokerStatsData(master, "GROUP_GET_NUMS", topic + "@" + group));
        put(out, "202 examineTopicStats", () -> admin.examineTopicStats(topic));
        put(out, "208 examineConsumeStats", () -> admin.examineConsumeStats(group));
        put(out, "328 getAllProducerInfo", () -> admin.getAllProducerInfo(master));
        put(out, "203 examineConsumerConnectionInfo", () -> admin.examineConsumerConnectionInfo(group));
        put(out, "206 fetchAllTopicList", admin::fetchAllTopicList);
        put(out, "307 getConsumerRunningInfo", () -> {
            String clientId = admin.examineConsumerConnectionInfo(group).getConnectionSet().iterator().next().getClientId();
            return admin.getConsumerRunningInfo(group, clientId, false);
        });
        put(out, "317 fetchConsumeStatsInBroker", () -> admin.fetchConsumeStatsInBroker(master, false, 5000));
        put(out, "309 consumeMessageDirectly", () -> {
            String clientId = admin.examineConsumerConnectionInfo(group).getConnectionSet().iterator().next().getClientId();
            return admin.consumeMessageDirectly(group, clientId, offsetMsgId);
        });
        return out;
    }

    private static void put(Map<String, Set<String>> out, String name, Call call) {
        Set<String> shape = new TreeSet<>();
        try {
            walk(JSON.toJSON(call.call()), "", shape);
        } catch (Exception e) {
            shape.add("ERROR: " + e);
        }
        out.put(name, shape);
    }

    private static void walk(Object node, String path, Set<String> out) {
        if (node == null) {
            return;
        }
        String field = path.substring(path.lastIndexOf('.') + 1);
        if (node instanceof Map<?, ?> map) {
            out.add(path + "{}");
            for (Map.Entry<?, ?> e : map.entrySet()) {
                String key = DATA_KEYED.contains(field) ? "*" : String.valueOf(e.getKey());
                if (key.startsWith("commitLogDiskRatio_")) {
                    key = "commitLogDiskRatio_<dir>"; // runtime info names the commit log directory in the key
                }
                walk(e.getValue(), path + "." + key, out);
            }
        } else if (node instanceof Collection<?> list) {
            out.add(path + "[]");
            for (Object element : list) {
                walk(element, path + "[*]", out);
            }
        } else {
            out.add(path);
        }
    }

    /** The paths of Apache's answers that rmq-fast's lack, one line per request. */
    static List<String> missing(Map<String, Set<String>> apache, Map<String, Set<String>> ours) {
        List<String> problems = new java.util.ArrayList<>();
        for (Map.Entry<String, Set<String>> e : apache.entrySet()) {
            Set<String> lacking = new TreeSet<>(e.getValue());
            lacking.removeAll(ours.get(e.getKey()));
            if (!lacking.isEmpty()) {
                problems.add(e.getKey() + ": lacks " + lacking + (ours.get(e.getKey()).stream()
                    .filter(p -> p.startsWith("ERROR")).findFirst().map(p -> " (" + p + ")").orElse("")));
            }
        }
        return problems;
    }

    static String report(Map<String, Set<String>> apache, Map<String, Set<String>> ours) {
        StringBuilder out = new StringBuilder("# admin API answers: field paths (Apache 4.9.7 | rmq-fast)\n");
        for (String name : apache.keySet()) {
            out.append("\n## ").append(name).append("\napache:\n");
            apache.get(name).forEach(p -> out.append("  ").append(p).append('\n'));
            out.append("rmq-fast:\n");
            ours.get(name).forEach(p -> out.append("  ").append(p).append('\n'));
        }
        return out.toString();
    }
}
