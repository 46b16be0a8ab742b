package dev.rwkvflink.engine.tokenizer;

import java.util.Arrays;

/**
 * A trie (prefix tree) over byte strings, built for fast longest-prefix matching.
 *
 * <p>Every node is a small integer; node 0 is the root (the empty string). The edge leaving node {@code n} on
 * byte {@code b} leads to a child node, and each node may be marked with the id of the token spelled by the
 * path from the root to it. Instead of an array of 256 children per node (which for a vocabulary of 65k tokens
 * and 116k nodes would need about 120 MB), all edges live in one hash table keyed by {@code n * 256 + b}; a step
 * down the trie is one hash lookup.
 */
final class ByteTrie {

    /** Returned by {@link #child} when there is no edge, and stored for nodes that end no token. */
    static final int NONE = -1;

    private static final int ROOT = 0;

    private final LongLongMap edges;
    private int[] tokenAtNode;
    private int nodeCount = 1;

    ByteTrie(int expectedNodes) {
        edges = new LongLongMap(expectedNodes);
        tokenAtNode = new int[Math.max(16, expectedNodes + 1)];
        Arrays.fill(tokenAtNode, NONE);
    }

    static int root() {
        return ROOT;
    }

    /**
     * Marks {@code key} with {@code tokenId}, creating the nodes on its path as needed.
     *
     * @return the token id {@code key} carried before, or {@link #NONE}
     */
    int put(byte[] key, int tokenId) {
        int node = ROOT;
        for (byte b : key) {
            int next = child(node, b);
            if (next == NONE) {
                next = newNode();
                edges.put(edgeKey(node, b), next);
            }
            node = next;
        }
        int previous = tokenAtNode[node];
        tokenAtNode[node] = tokenId;
        return previous;
    }

    /** The node reached from {@code node} along byte {@code b}, or {@link #NONE}. */
    int child(int node, byte b) {
        return (int) edges.get(edgeKey(node, b));
    }

    /** The token id that ends at {@code node}, or {@link #NONE}. */
    int tokenAt(int node) {
        return tokenAtNode[node];
    }

    private int newNode() {
        if (nodeCount == tokenAtNode.length) {
            int oldLength = tokenAtNode.length;
            tokenAtNode = Arrays.copyOf(tokenAtNode, oldLength * 2);
            Arrays.fill(tokenAtNode, oldLength, tokenAtNode.length, NONE);
        }
        return nodeCount++;
    }

    private static long edgeKey(int node, byte b) {
        return ((long) node << 8) | (b & 0xFF);
    }
}
