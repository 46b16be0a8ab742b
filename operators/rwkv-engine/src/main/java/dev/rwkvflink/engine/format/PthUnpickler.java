package dev.rwkvflink.engine.format;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A restricted pickle reader: just the opcodes and globals a {@code torch.save}d state dict needs. Python
 * objects become Java values: str -&gt; {@link String}, int -&gt; {@link Long}, float -&gt; {@link Double},
 * bool -&gt; {@link Boolean}, None -&gt; {@link #NONE}, tuple -&gt; {@link Tuple}, list -&gt; {@link ArrayList},
 * dict / OrderedDict -&gt; {@link LinkedHashMap}, tensors -&gt; {@link TensorRef}. Nothing is ever executed:
 * REDUCE may only call the whitelisted constructors below, which build these records.
 */
final class PthUnpickler {
    /** Globals a model file may reference, with what they mean here. */
    static final Set<String> ALLOWED = Set.of(
            "collections.OrderedDict",
            "torch._utils._rebuild_tensor",
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_tensor_v3",
            "torch._utils._rebuild_parameter",
            "torch._utils._rebuild_parameter_with_state",
            "torch.FloatStorage",
            "torch.HalfStorage",
            "torch.BFloat16Storage",
            "torch.DoubleStorage",
            "torch.LongStorage",
            "torch.IntStorage",
            "torch.ShortStorage",
            "torch.CharStorage",
            "torch.ByteStorage",
            "torch.BoolStorage",
            "torch.UntypedStorage",
            "torch.storage.UntypedStorage",
            "torch.float32",
            "torch.float",
            "torch.float16",
            "torch.half",
            "torch.bfloat16");

    static final int MAX_STACK = 1 << 20;
    static final int MAX_MEMO = 1 << 22;

    /** Python's None (the stack and collections here hold no Java nulls). */
    static final Object NONE = new Object() {
        @Override
        public String toString() {
            return "None";
        }
    };

    private static final Object MARK = new Object();

    /** A module-level name, such as {@code torch._utils._rebuild_tensor_v2}. */
    record Global(String qualifiedName) {}

    /** An immutable Python tuple. */
    record Tuple(List<Object> items) {}

    /** A persistent id {@code ('storage', type, key, location, numel)}: entry {@code data/<key>}. */
    record StorageRef(String type, String key, long numel) {}

    /** A rebuilt tensor; {@code dtype} is null unless {@code _rebuild_tensor_v3} gave one. */
    record TensorRef(StorageRef storage, long offset, long[] shape, long[] stride, String dtype) {}

    private final Path path;
    private final byte[] in;
    private int pos;
    private final ArrayList<Object> stack = new ArrayList<>();
    private final ArrayList<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();

    PthUnpickler(Path path, byte[] pickle) {
        this.path = path;
        this.in = pickle;
    }

    /** Bytes per element of a storage type ({@code UntypedStorage} counts bytes). */
    static int storageElementSize(String type) {
        return switch (type) {
            case "torch.DoubleStorage", "torch.LongStorage" -> 8;
            case "torch.FloatStorage", "torch.IntStorage" -> 4;
            case "torch.HalfStorage", "torch.BFloat16Storage", "torch.ShortStorage" -> 2;
            default -> 1;
        };
    }

    /** A short description of a value for error messages (never recursive). */
    static String describe(Object o) {
        return switch (o) {
            case String s -> "'" + (s.length() > 60 ? s.substring(0, 60) + "..." : s) + "'";
            case Global g -> g.qualifiedName();
            case Tuple t -> "a tuple of " + t.items().size();
            case Map<?, ?> m -> "a dict of " + m.size();
            case List<?> l -> "a list of " + l.size();
            case TensorRef _ -> "a tensor";
            case StorageRef _ -> "a storage";
            case Long l -> "int " + l;
            default -> o == NONE ? "None" : o.getClass().getSimpleName();
        };
    }

    Object load() throws IOException {
        while (true) {
            int at = pos;
            int op = u8();
            switch (op) {
                case 0x80 -> { // PROTO
                    int proto = u8();
                    if (proto < 2 || proto > 5) {
                        throw error(at, "unsupported pickle protocol " + proto);
                    }
                }
                case 0x95 -> skip(8); // FRAME: a length hint only
                case '}' -> push(new LinkedHashMap<>()); // EMPTY_DICT
                case ')' -> push(new Tuple(List.of())); // EMPTY_TUPLE
                case ']' -> push(new ArrayList<>()); // EMPTY_LIST
                case '(' -> { // MARK
                    if (marks.size() >= MAX_STACK) {
                        throw error(at, "too many nested marks");
                    }
                    marks.add(stack.size());
                }
                case 'X' -> push(utf8(at, u32())); // BINUNICODE
                case 0x8c -> push(utf8(at, u8())); // SHORT_BINUNICODE
                case 0x8d -> push(utf8(at, i64())); // BINUNICODE8
                case 'J' -> push((long) i32()); // BININT
                case 'K' -> push((long) u8()); // BININT1
                case 'M' -> push((long) (u8() | u8() << 8)); // BININT2
                case 0x8a -> push(long1(at)); // LONG1
                case 'G' -> push(Double.longBitsToDouble(Long.reverseBytes(i64()))); // BINFLOAT, big-endian
                case 0x88 -> push(Boolean.TRUE); // NEWTRUE
                case 0x89 -> push(Boolean.FALSE); // NEWFALSE
                case 'N' -> push(NONE);
                case 'q' -> memoPut(at, u8()); // BINPUT
                case 'r' -> memoPut(at, u32()); // LONG_BINPUT
                case 0x94 -> memoPut(at, memo.size()); // MEMOIZE
                case 'h' -> push(memoGet(at, u8())); // BINGET
                case 'j' -> push(memoGet(at, u32())); // LONG_BINGET
                case 't' -> push(new Tuple(popToMark(at))); // TUPLE
                case 0x85 -> push(tupleOf(1, at)); // TUPLE1
                case 0x86 -> push(tupleOf(2, at)); // TUPLE2
                case 0x87 -> push(tupleOf(3, at)); // TUPLE3
                case '0' -> pop(at); // POP
                case 's' -> { // SETITEM
                    Object value = pop(at);
                    Object key = pop(at);
                    setItem(at, peek(at), key, value);
                }
                case 'u' -> { // SETITEMS
                    List<Object> items = popToMark(at);
                    if (items.size() % 2 != 0) {
                        throw error(at, "SETITEMS with an odd number of items");
                    }
                    Object dict = peek(at);
                    for (int i = 0; i < items.size(); i += 2) {
                        setItem(at, dict, items.get(i), items.get(i + 1));
                    }
                }
                case 'a' -> { // APPEND
                    Object value = pop(at);
                    list(at, peek(at)).add(value);
                }
                case 'e' -> { // APPENDS
                    List<Object> items = popToMark(at);
                    list(at, peek(at)).addAll(items);
                }
                case 'c' -> push(global(at, line(at), line(at))); // GLOBAL "module\nname\n"
                case 0x93 -> { // STACK_GLOBAL
                    Object name = pop(at);
                    Object module = pop(at);
                    if (!(module instanceof String m) || !(name instanceof String n)) {
                        throw error(at, "STACK_GLOBAL needs two strings");
                    }
                    push(global(at, m, n));
                }
                case 'Q' -> push(persistentLoad(at, pop(at))); // BINPERSID
                case 'R' -> { // REDUCE
                    Object args = pop(at);
                    Object callable = pop(at);
                    push(reduce(at, callable, args));
                }
                case 'b' -> { // BUILD: object state (OrderedDict._metadata, parameter state) is not needed
                    Object state = pop(at);
                    Object target = peek(at);
                    if (!(target instanceof Map<?, ?>) && !(target instanceof TensorRef)) {
                        throw error(at, "BUILD on " + describe(target) + " with " + describe(state));
                    }
                }
                case '.' -> { // STOP
                    if (stack.size() != 1 || !marks.isEmpty()) {
                        throw error(at, "STOP with " + stack.size() + " values on the stack");
                    }
                    return stack.getFirst();
                }
                default ->
                    throw error(
                            at,
                            String.format(
                                    "unsupported pickle opcode 0x%02x%s: model files may " + "only contain tensors",
                                    op, op >= 0x20 && op < 0x7f ? " ('" + (char) op + "')" : ""));
            }
        }
    }

    private Global global(int at, String module, String name) throws IOException {
        String qualified = module + "." + name;
        if (!ALLOWED.contains(qualified)) {
            throw error(at, "refusing global " + qualified + ": model files may only contain tensors");
        }
        return new Global(qualified);
    }

    private Object reduce(int at, Object callable, Object argsObj) throws IOException {
        if (!(callable instanceof Global g)) {
            throw error(at, "REDUCE on " + describe(callable) + ", which is not a function");
        }
        if (!(argsObj instanceof Tuple(List<Object> args))) {
            throw error(at, "REDUCE arguments for " + g.qualifiedName() + " are not a tuple");
        }
        return switch (g.qualifiedName()) {
            case "collections.OrderedDict" -> {
                if (!args.isEmpty()) {
                    throw error(at, "OrderedDict with constructor arguments");
                }
                yield new LinkedHashMap<>();
            }
            case "torch._utils._rebuild_tensor" -> tensor(at, args, 4, 4, null);
            case "torch._utils._rebuild_tensor_v2" -> tensor(at, args, 6, 7, null);
            case "torch._utils._rebuild_tensor_v3" -> {
                if (args.size() < 7 || !(args.get(6) instanceof Global dtype)) {
                    throw error(at, "_rebuild_tensor_v3 without a dtype");
                }
                yield tensor(at, args, 7, 8, dtype.qualifiedName());
            }
            case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state" -> {
                if (args.isEmpty() || !(args.getFirst() instanceof TensorRef t)) {
                    throw error(at, g.qualifiedName() + " without a tensor");
                }
                yield t;
            }
            default -> throw error(at, g.qualifiedName() + " cannot be called");
        };
    }

    private TensorRef tensor(int at, List<Object> args, int min, int max, String dtype) throws IOException {
        if (args.size() < min || args.size() > max) {
            throw error(at, "tensor rebuild with " + args.size() + " arguments, expected " + min + ".." + max);
        }
        if (!(args.get(0) instanceof StorageRef storage) || !(args.get(1) instanceof Long offset)) {
            throw error(at, "tensor rebuild without (storage, offset, ...)");
        }
        return new TensorRef(storage, offset, longs(at, args.get(2)), longs(at, args.get(3)), dtype);
    }

    private long[] longs(int at, Object o) throws IOException {
        if (!(o instanceof Tuple(List<Object> items)) || items.size() > 16) {
            throw error(at, "tensor size/stride is " + describe(o) + ", not a tuple of at most 16 ints");
        }
        long[] out = new long[items.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(items.get(i) instanceof Long v)) {
                throw error(at, "tensor size/stride holds " + describe(items.get(i)));
            }
            out[i] = v;
        }
        return out;
    }

    private StorageRef persistentLoad(int at, Object pid) throws IOException {
        if (pid instanceof Tuple(List<Object> f)
                && f.size() == 5
                && "storage".equals(f.get(0))
                && f.get(1) instanceof Global type
                && type.qualifiedName().contains("Storage")
                && f.get(2) instanceof String key
                && f.get(3) instanceof String
                && f.get(4) instanceof Long n
                && n >= 0) {
            return new StorageRef(type.qualifiedName(), key, n);
        }
        throw error(at, "persistent id " + describe(pid) + " is not ('storage', type, key, location, numel)");
    }

    private void setItem(int at, Object dict, Object key, Object value) throws IOException {
        if (!(dict instanceof Map<?, ?>)) {
            throw error(at, "SETITEM on " + describe(dict));
        }
        if (!(key instanceof String) && !(key instanceof Long) && !(key instanceof Boolean)) {
            throw error(at, "dict key " + describe(key) + " (only str and int keys are supported)");
        }
        @SuppressWarnings("unchecked")
        Map<Object, Object> map = (Map<Object, Object>) dict;
        map.put(key, value);
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(int at, Object o) throws IOException {
        if (!(o instanceof ArrayList<?>)) {
            throw error(at, "APPEND on " + describe(o));
        }
        return (List<Object>) o;
    }

    private Tuple tupleOf(int n, int at) throws IOException {
        Object[] items = new Object[n];
        for (int i = n - 1; i >= 0; i--) {
            items[i] = pop(at);
        }
        return new Tuple(List.of(items));
    }

    private void memoPut(int at, long index) throws IOException {
        if (stack.isEmpty()) {
            throw error(at, "memo store from an empty stack");
        }
        if (memo.size() >= MAX_MEMO && !memo.containsKey(index)) {
            throw error(at, "more than " + MAX_MEMO + " memo entries");
        }
        memo.put(index, stack.getLast());
    }

    private Object memoGet(int at, long index) throws IOException {
        Object o = memo.get(index);
        if (o == null) {
            throw error(at, "memo entry " + index + " was never stored");
        }
        return o;
    }

    private void push(Object o) throws IOException {
        if (stack.size() >= MAX_STACK) {
            throw error(pos, "pickle stack deeper than " + MAX_STACK);
        }
        stack.add(o);
    }

    private Object pop(int at) throws IOException {
        int floor = marks.isEmpty() ? 0 : marks.getLast();
        if (stack.size() <= floor) {
            throw error(at, "pickle stack underflow");
        }
        return stack.removeLast();
    }

    private Object peek(int at) throws IOException {
        int floor = marks.isEmpty() ? 0 : marks.getLast();
        if (stack.size() <= floor) {
            throw error(at, "pickle stack underflow");
        }
        return stack.getLast();
    }

    private List<Object> popToMark(int at) throws IOException {
        if (marks.isEmpty()) {
            throw error(at, "no MARK to pop to");
        }
        int mark = marks.removeLast();
        List<Object> top = stack.subList(mark, stack.size());
        List<Object> items = List.copyOf(top);
        top.clear();
        return items;
    }

    private int u8() throws IOException {
        need(1);
        return in[pos++] & 0xFF;
    }

    private int i32() throws IOException {
        need(4);
        int v = (in[pos] & 0xFF) | (in[pos + 1] & 0xFF) << 8 | (in[pos + 2] & 0xFF) << 16 | in[pos + 3] << 24;
        pos += 4;
        return v;
    }

    private long u32() throws IOException {
        return i32() & 0xFFFFFFFFL;
    }

    private long i64() throws IOException {
        long lo = u32();
        long hi = u32();
        return lo | hi << 32;
    }

    private Long long1(int at) throws IOException {
        int n = u8();
        if (n > 8) {
            throw error(at, "integer of " + n + " bytes is too large");
        }
        need(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) {
            v = v << 8 | (in[pos + i] & 0xFF);
        }
        if (n > 0 && n < 8 && in[pos + n - 1] < 0) {
            v |= -1L << (8 * n); // sign-extend two's complement
        }
        pos += n;
        return v;
    }

    private void skip(int n) throws IOException {
        need(n);
        pos += n;
    }

    private String utf8(int at, long n) throws IOException {
        if (n < 0 || n > in.length - pos) {
            throw error(at, "string of " + n + " bytes runs past the end of data.pkl");
        }
        String s = new String(in, pos, (int) n, StandardCharsets.UTF_8);
        pos += (int) n;
        return s;
    }

    private String line(int at) throws IOException {
        int start = pos;
        while (pos < in.length && in[pos] != '\n') {
            if (pos - start > 256) {
                throw error(at, "GLOBAL name longer than 256 bytes");
            }
            pos++;
        }
        need(1);
        String s = new String(in, start, pos - start, StandardCharsets.UTF_8);
        pos++;
        return s;
    }

    private void need(int n) throws IOException {
        if (n > in.length - pos) {
            throw error(pos, "data.pkl ends in the middle of an instruction (truncated)");
        }
    }

    private IOException error(int at, String what) {
        return new IOException(path + ": data.pkl byte " + at + ": " + what);
    }
}
