package dev.rwkvflink.operator;

import dev.rwkvflink.engine.state.RwkvState;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The RWKV states of the keys a {@link RwkvEmbedFunction} instance used last, kept in memory between rows so that a
 * document's next chunk does not rebuild its state from Flink state: least recently used first out. An entry is
 * only a copy: Flink state stays the record, and an entry is used only while it holds as many tokens as the key's
 * progress says (after a restore the instance is new and empty anyway).
 */
final class LiveStates {
    /** A key's state between rows. */
    static final class Live {
        RwkvState state;
        /** The hidden vector of the last token; null before the first. */
        float[] hidden;

        long tokens;
        /** The token count of the key's last snapshot in Flink state (0: none). */
        long snapshotTokens;
    }

    private final int capacity;
    private final LinkedHashMap<String, Live> entries;

    LiveStates(int capacity) {
        this.capacity = capacity;
        this.entries = new LinkedHashMap<>(16, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<String, Live> eldest) {
                return size() > LiveStates.this.capacity;
            }
        };
    }

    int capacity() {
        return capacity;
    }

    /** States held now. */
    int size() {
        return entries.size();
    }

    /** The key's state if it is here and holds exactly {@code tokens} tokens; else null (and dropped). */
    Live get(String key, long tokens) {
        Live s = entries.get(key);
        if (s != null && s.tokens != tokens) {
            entries.remove(key);
            return null;
        }
        return s;
    }

    void put(String key, Live s) {
        entries.put(key, s);
    }

    void remove(String key) {
        entries.remove(key);
    }
}
