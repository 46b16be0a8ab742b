package dev.rwkvflink.engine.tokenizer;

import java.util.Objects;

/**
 * Tokenizes a text that arrives in pieces into exactly the tokens of the whole text.
 *
 * <p>Tokenizing each piece on its own is wrong: a token can span a piece boundary (World's longest match), a word
 * can (BPE), and so can a character (a piece may end inside a multi-byte UTF-8 sequence). A chunk tokenizer
 * therefore emits only the tokens that no later byte can change, and hands the rest back as a <em>carry</em>
 * that the caller passes to the next step:
 * <pre>
 *   carry = {}                                  // empty at the start of a text
 *   for each piece:  step = feed(carry, piece, isLastPiece);  emit(step.tokens());  carry = step.carry()
 * </pre>
 * <b>Contract:</b> for every split of a text's bytes into pieces (empty pieces included), the tokens of all steps,
 * concatenated, equal {@link Tokenizer#encodeBytes} of the whole text, and the carry stays bounded by a constant
 * that each implementation states (it never grows with the length of the text). The one documented exception is
 * {@link NeoxBpeTokenizer}'s cap on a single giant pre-token.
 *
 * <p>A chunk tokenizer keeps no state of its own (the carry is the state), so one instance serves any number of
 * texts and threads; the carry is small enough to live in a stream processor's checkpointed state.
 */
@FunctionalInterface
public interface ChunkTokenizer {

    /**
     * One step over the next piece of a text.
     *
     * @param carry the bytes the previous step held back ({@link Step#carry()}); empty at the start of a text
     * @param piece the next bytes of the text (UTF-8 expected, any bytes accepted); may be empty
     * @param last  {@code true} when no more text follows: everything is tokenized and the carry is empty
     * @return the tokens that no later byte can change, and the bytes to carry into the next step
     */
    Step feed(byte[] carry, byte[] piece, boolean last);

    /**
     * The result of one {@link #feed} step.
     *
     * @param tokens token ids final for the text so far, in order (possibly none)
     * @param carry  bytes to pass as {@code carry} to the next step (empty after the last piece)
     */
    record Step(int[] tokens, byte[] carry) {
        public Step {
            Objects.requireNonNull(tokens, "tokens");
            Objects.requireNonNull(carry, "carry");
        }
    }
}
