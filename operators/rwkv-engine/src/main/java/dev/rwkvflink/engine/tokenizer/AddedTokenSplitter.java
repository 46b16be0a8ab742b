package dev.rwkvflink.engine.tokenizer;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Cuts a text at the occurrences of a fixed set of "added tokens" (such as {@code <|endoftext|>} or runs of
 * spaces), which Hugging Face {@code tokenizers} recognises in the text before any pre-tokenisation.
 *
 * <p>Matching is leftmost-longest, as with {@code tokenizers}' Aho-Corasick automaton: scanning left to right,
 * the first position where some added token starts wins; among the tokens starting there the longest wins;
 * scanning resumes after it. With a handful of tokens a direct scan is as good as an automaton: candidates are
 * grouped by first character and tried longest first.
 */
final class AddedTokenSplitter {

    /** A piece of the text: either plain text ({@code tokenId < 0}) or one added token. */
    record Piece(String text, int tokenId) {
        boolean isToken() {
            return tokenId >= 0;
        }
    }

    private record Candidate(String content, int id) {}

    /** Candidates by first character, longest first. */
    private final Map<Character, List<Candidate>> byFirstChar = new HashMap<>();
    /** Length in chars of the longest token (0 if there are none). */
    private final int maxLength;

    /** @param tokens added token contents (non-empty) and their ids */
    AddedTokenSplitter(Map<String, Integer> tokens) {
        tokens.forEach((content, id) -> byFirstChar
                .computeIfAbsent(content.charAt(0), c -> new ArrayList<>())
                .add(new Candidate(content, id)));
        byFirstChar
                .values()
                .forEach(list -> list.sort(
                        Comparator.comparingInt((Candidate c) -> c.content().length())
                                .reversed()));
        maxLength = tokens.keySet().stream().mapToInt(String::length).max().orElse(0);
    }

    /**
     * Length in chars of the longest added token (0 if there are none). Which token, if any, matches at position
     * {@code p} depends only on the chars in {@code [p, p + maxLength)}.
     */
    int maxLength() {
        return maxLength;
    }

    /** The pieces of {@code text}, in order; their texts concatenate to {@code text}. */
    List<Piece> split(String text) {
        List<Piece> pieces = new ArrayList<>();
        int plainStart = 0;
        int pos = 0;
        while (pos < text.length()) {
            Candidate match = longestAt(text, pos);
            if (match == null) {
                pos++;
                continue;
            }
            if (pos > plainStart) {
                pieces.add(new Piece(text.substring(plainStart, pos), -1));
            }
            pieces.add(new Piece(match.content(), match.id()));
            pos += match.content().length();
            plainStart = pos;
        }
        if (plainStart < text.length()) {
            pieces.add(new Piece(text.substring(plainStart), -1));
        }
        return pieces;
    }

    private Candidate longestAt(String text, int pos) {
        List<Candidate> candidates = byFirstChar.get(text.charAt(pos));
        if (candidates != null) {
            for (Candidate candidate : candidates) {
                if (text.startsWith(candidate.content(), pos)) {
                    return candidate;
                }
            }
        }
        return null;
    }
}
