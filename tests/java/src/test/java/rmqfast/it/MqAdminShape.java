package rmqfast.it;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

/**
 * The output shape of an mqadmin command: lines with numbers, addresses, message ids and timestamps replaced by
 * placeholders (and Java's Object.toString hashes), so two brokers' outputs compare equal when only their numbers differ.
 */
final class MqAdminShape {
    /** How a command's output is compared. */
    enum Mode {
        /** Key/value lines ("key: value", "key = value"): every key Apache prints, ours prints too. */
        KEYS,
        /** A table: the header line (first non-blank) equal; rows present when Apache has rows. */
        TABLE,
        /** The whole output equal after normalising. */
        TEXT,
        /** Every line Apache prints, ours prints too (ours may print more: listings of names). */
        LINES,
        /** Only success, and output present when Apache printed some (listings of names that differ). */
        ANY
    }

    private static final Pattern TIMESTAMP = Pattern.compile(
        "\\d{4}-\\d{2}-\\d{2}[ T]\\d{2}:\\d{2}:\\d{2}([,.]\\d{1,3})?|\\w{3} \\w{3} \\d{2} \\d{2}:\\d{2}:\\d{2} \\w+ \\d{4}");
    private static final Pattern ADDR = Pattern.compile("/?\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}(:\\d+)?");
    private static final Pattern HEX_ID = Pattern.compile("\\b[0-9A-Fa-f]{24,}\\b");
    private static final Pattern CLIENT_ID = Pattern.compile("<ADDR>@[\\w.#-]+");
    private static final Pattern JAVA_HASH = Pattern.compile("@[0-9a-f]{1,8}\\b");
    private static final Pattern NUMBER = Pattern.compile("-?\\d+(\\.\\d+)?(E-?\\d+)?");
    private static final Pattern KEY = Pattern.compile("^\\s*([A-Za-z#%][\\w#%()/ .-]{0,60}?)\\s*[:=](\\s|$)");

    static String normalise(String line) {
        String s = TIMESTAMP.matcher(line).replaceAll("<TS>");
        s = ADDR.matcher(s).replaceAll("<ADDR>");
        s = CLIENT_ID.matcher(s).replaceAll("<CLIENT>");
        s = HEX_ID.matcher(s).replaceAll("<ID>");
        s = JAVA_HASH.matcher(s).replaceAll("@<HASH>");
        s = NUMBER.matcher(s).replaceAll("#");
        return s.replaceAll("\\s+", " ").trim();
    }

    static List<String> lines(String out) {
        return out.lines().map(MqAdminShape::normalise).filter(l -> !l.isEmpty()).collect(Collectors.toList());
    }

    static Set<String> keys(String out) {
        Set<String> keys = new LinkedHashSet<>();
        for (String l : lines(out)) {
            Matcher m = KEY.matcher(l);
            if (m.find()) {
                keys.add(m.group(1).trim());
            }
        }
        return keys;
    }

    /** Null when {@code ours} has the shape of {@code apache}, else what differs. */
    static String compare(Mode mode, String apache, String ours) {
        List<String> a = lines(apache);
        List<String> o = lines(ours);
        if (!a.isEmpty() && o.isEmpty()) {
            return "no output (Apache printed " + a.size() + " lines)";
        }
        switch (mode) {
            case KEYS: {
                Set<String> missing = new LinkedHashSet<>(keys(apache));
                missing.removeAll(keys(ours));
                return missing.isEmpty() ? null : "missing keys " + missing;
            }
            case TABLE: {
                if (a.isEmpty()) {
                    return null;
                }
                if (!a.get(0).equals(o.get(0))) {
                    return "header differs: apache [" + a.get(0) + "] ours [" + o.get(0) + "]";
                }
                if (a.size() > 1 && o.size() < 2) {
                    return "no rows (Apache printed " + (a.size() - 1) + ")";
                }
                return null;
            }
            case TEXT: {
                List<String> onlyA = new ArrayList<>(a);
                onlyA.removeAll(o);
                List<String> onlyO = new ArrayList<>(o);
                onlyO.removeAll(a);
                return onlyA.isEmpty() && onlyO.isEmpty() ? null
                    : "lines differ: apache-only " + onlyA + " ours-only " + onlyO;
            }
            case LINES: {
                List<String> missing = new ArrayList<>(a);
                missing.removeAll(o);
                return missing.isEmpty() ? null : "missing lines " + missing;
            }
            default:
                return null;
        }
    }

    private MqAdminShape() {
    }
}
