#!/usr/bin/env bash
# Stages everything the GPU machine needs into .gpu/ at the repository root: a Java runtime, the operator's and the
# jobs' whole Flink + Kafka test class paths, this project's classes and the reference models. Runs HERE, on the build
# machine (the GPU machine has no Java, no Maven and no network); takes ~10 minutes the first time (xz), ~1 minute
# when only this project's classes changed. The device tool copies at most 64 MiB (the tracked tree, ~2 MB, plus
# .gpu), so .gpu must stay under ~60 MiB: everything travels as xz (solid compression over stored jars and an
# uncompressed runtime image packs about half as big as zip per entry); gpu-check.sh unpacks it on the device in a
# few seconds. What is staged (sizes of the defaults, MiB):
#   .gpu/jre.tar.xz      14  jre/: a jlink'd Java 25 runtime (GPU_JRE_MODULES: what jdeps and the tests showed Flink,
#                            the Kafka broker and clients need), uncompressed image, Java debug attributes stripped,
#                            native libraries without symbol tables, java.desktop cut down to java.beans (log4j-core,
#                            kryo and jackson use it; AWT, Swing, imaging, sound and printing go), java.xml without
#                            XPath. Rebuilt when the module list or the JDK changes.
#   .gpu/lib.tar.xz      33  lib/: every jar of the Maven test class paths of native-bindings, rwkv-engine,
#                            flink-operator and jobs (Flink with its -tests jars and flink-test-utils, RocksDB, Kafka
#                            clients, JUnit, ...), of the Kafka broker's class path (connectors' kafka-broker.classpath,
#                            for EmbeddedKafka's child JVM) and the JUnit console launcher: each jar once, trimmed and
#                            stored without compression, then xz'd as one stream with a dictionary larger than all of
#                            them (~5 minutes). Rebuilt only when a jar or the trimming changes.
#   .gpu/classes.tar.xz  0.5 classes/: main/<module> and test/<module> (this project's classes, test classes and
#                            resources) and classpath/<module|kafka-broker|main>, each module's test class path (and
#                            the broker's, and their union for --main), one entry a line, relative to the bundle.
#   .gpu/shared.tar.xz   13  shared/reference/: rwkv-cpp-tests/ (GPU_MODELS) and rwkv_vocab_v20230424.txt, the layout
#                            -Drwkv.shared.dir expects.
# Trimmed, because no device run uses it (see bundle.py below; GPU_DROP_JARS):
#   - natives for other systems: frocksdbjni keeps librocksdbjni-linux64.so only (52 -> 12 MB), zstd-jni, snappy,
#     lz4, flink-shaded-netty their Linux x86-64 libraries only; netty's QUIC (quiche) libraries go entirely;
#   - whole jars: icu4j, curator-test with ZooKeeper, netty 4.1, guava and dropwizard metrics (flink-test-utils'
#     ZooKeeper test server), byte-buddy, assertj, javassist, scala-reflect (the broker runs without it),
#     async-profiler, annotation-only jars; the Table planner, its runtime and bridges, flink-json and the SQL
#     client (the SQL tests are no GPU tests: ~15 MB of xz);
#   - flink-shaded-zookeeper: all but its shaded guava (flink-runtime uses that one; ZooKeeper high availability is
#     the only user of the rest); flink-runtime-web: the dashboard's web/ files (the REST API stays);
#   - Flink's -tests jars and the Table API jars flink-test-utils drags in: the classes nothing else names, directly
#     or through kept ones (Flink's own test cases and more: ~6,400 of 7,200 classes);
#   - every class: local variable tables (line numbers stay, except in Pekko/Scala inside flink-rpc-akka.jar and the
#     broker's scala-library); META-INF/native-image/ (GraalVM hints).
# The nested flink-rpc-akka.jar (Pekko + Scala, extracted by Flink at run time) stays a jar, stored like the others.
# Then on the device, from the repository root, with the device tool and carry [".gpu"], e.g.:
#   bash native-bindings/gpu-check.sh
#   GPU_TESTS="dev.rwkvflink.jobs.CudaEmbedJobITCase" bash native-bindings/gpu-check.sh
#   bash native-bindings/gpu-check.sh --main dev.rwkvflink.engine.backend.cuda.CudaBench --reps 5
# Here, to check the bundle without a GPU: copy the tree and .gpu elsewhere and run there with GPU_ALLOW_NO_CUDA=1.
#
# Environment:
#   RWKV_BUILD_DIR   Maven build folder of each module (-Drwkv.build.dir), default: target
#   GPU_MODELS       file patterns copied from ../shared/reference/rwkv-cpp-tests, default: the models the GPU tests read
#                    (v7 in FP32 only: no GPU test reads its other formats), every expected-logits file and SOURCES.md
#   GPU_MAX_FILE_MB  reference files larger than this are skipped, default: 5
#   GPU_JRE_MODULES  the runtime's modules (comma-separated), default below
#   GPU_DROP_JARS    regex (Python) of jar file names left out, default below; "^$" keeps every jar
#   GPU_FAST=1       xz -1 instead of the slow, small settings (minutes faster, ~40% bigger: for trying things here)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bin/java-env.sh
export JAVA_HOME
export MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}"

build=${RWKV_BUILD_DIR:-target}
gpu=$root/.gpu
reference=$root/../shared/reference
dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
# The modules whose tests and main classes run on the device (the first is the default class path of --main last).
modules=(native-bindings operators/rwkv-engine operators/flink-operator jobs)
jre_modules=${GPU_JRE_MODULES:-java.base,jdk.unsupported,java.logging,java.management,jdk.management,jdk.incubator.vector,java.xml,java.sql,java.naming,java.security.sasl,java.security.jgss,jdk.net,jdk.crypto.ec,java.desktop,java.rmi,java.management.rmi}
drop_jars=${GPU_DROP_JARS:-'^((icu4j|curator-test|zookeeper(-jute)?|failureaccess|listenablefuture|byte-buddy|javassist|scala-reflect|async-profiler|assertj-core|checker-qual|error_prone_annotations|j2objc-annotations|audience-annotations|flink-table-planner-loader|flink-table-runtime|flink-table-api-java-bridge|flink-table-api-bridge-base|flink-json|flink-sql-[a-z-]+)-[0-9]|netty-[a-z-]+-4\.1\.|guava-[0-9.]+-jre\.jar|metrics-core-3\.)'}

for tool in python3 xz tar; do
  command -v "$tool" >/dev/null || { echo "gpu-prepare: $tool is needed on the build machine" >&2; exit 2; }
done

# .gpu/ is build output: keep it out of git (the device tool carries it only because it is named in carry).
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"

# Earlier layouts (plain lib/, test-classes/, shared/ models, jre.tgz) would only add to what is carried.
rm -rf "$gpu/lib" "$gpu/test-classes" "$gpu/shared" "$gpu/jre.tgz" "$gpu/classes" "$gpu"/*.tmp
mkdir -p "$gpu"
stage=$(mktemp -d "${TMPDIR:-/tmp}/gpu-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

pack() { # ARCHIVE "XZ OPTIONS" DIR...: tar DIR... (relative to $stage) into ARCHIVE; any xz >= 5.0 unpacks it
  local archive=$1 options=$2
  shift 2
  [[ -n ${GPU_FAST:-} ]] && options="-1 -T0"
  # shellcheck disable=SC2086  # the options are words
  tar --sort=name --owner=0 --group=0 --numeric-owner -C "$stage" -cf - "$@" | xz $options > "$archive.tmp"
  mv "$archive.tmp" "$archive"
}
key_of() { { cat; echo "fast=${GPU_FAST:-}"; } | sha256sum | cut -c1-64; }
fresh() { # ARCHIVE KEY: whether ARCHIVE exists and was made from KEY
  [[ -f $1 && -f $1.key && $(cat "$1.key") == "$2" ]]
}

echo "== building ${modules[*]} (classes and test classes, tests not run) and their test class paths"
mvn -B -ntp -q -Drwkv.build.dir="$build" -pl "$(IFS=,; echo "${modules[*]}")" -am -DskipTests \
  test-compile "$dependency_plugin:build-classpath" -DincludeScope=test -Dmdep.outputFile="$build/gpu-test.classpath"
broker_list=connectors/$build/classes/dev/rwkvflink/kafka/local/kafka-broker.classpath
[[ -f $broker_list ]] || { echo "gpu-prepare: $broker_list is missing (connectors not built?)" >&2; exit 2; }

# The console launcher of the JUnit Platform that goes with the root pom's JUnit (5.x.y -> platform 1.x.y).
junit=$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' pom.xml | head -1)
if [[ $junit == 5.* ]]; then platform=1.${junit#5.}; else platform=$junit; fi
echo "== JUnit console launcher $platform"
mkdir -p "$stage/junit"
mvn -B -ntp -q -N "$dependency_plugin:copy" \
  -Dartifact="org.junit.platform:junit-platform-console-standalone:$platform" -DoutputDirectory="$stage/junit"
console=$(ls "$stage"/junit/junit-platform-console-standalone-*.jar)

# plan: class path files (classes/classpath/*) and the lists of jars and class folders to stage.
# repack: copies jars without compression, leaving out other systems' natives and what the device never reads.
cat > "$stage/bundle.py" <<'PY'
import io, os, re, shutil, struct, subprocess, sys, tempfile, zipfile

def plan(root, build, stage, drop, console, broker_list, modules):
    drop = re.compile(drop)
    jars, dirs, dropped = {}, {}, set()
    def mapped(entry):
        entry = entry.strip()
        if not entry:
            return None
        path = os.path.realpath(entry)
        if os.path.isdir(path):
            rel = os.path.relpath(path, root)
            for kind, dest in (('classes', 'main'), ('test-classes', 'test')):
                suffix = '/' + build + '/' + kind
                if rel.endswith(suffix):
                    dirs[path] = 'classes/%s/%s' % (dest, os.path.basename(rel[:-len(suffix)]))
                    return dirs[path]
            sys.exit('gpu-prepare: unexpected class folder on a class path: ' + path)
        name = os.path.basename(path)
        if drop.search(name):
            dropped.add(name)
            return None
        if jars.setdefault(name, path) != path:
            sys.exit('gpu-prepare: two jars named %s: %s and %s' % (name, jars[name], path))
        return 'lib/' + name
    def artifact(entry):  # (group/artifact:classifier, version) of a jar in the local repository, else None
        parts = entry.split('/')
        if not entry.endswith('.jar') or len(parts) < 4:
            return None
        version, name, file = parts[-2], parts[-3], parts[-1]
        classifier = file[len(name) + len(version) + 1:-4] if file.startswith(name + '-' + version) else ''
        return '/'.join(parts[:-2]) + ':' + classifier, version
    out = os.path.join(stage, 'classes', 'classpath')
    os.makedirs(out, exist_ok=True)
    main, versions = [], {}
    for module in reversed(modules):  # jobs first: the widest class path decides the versions for --main
        name = os.path.basename(module)
        deps = open(os.path.join(root, module, build, 'gpu-test.classpath')).read().strip().split(':')
        sources = [os.path.join(root, module, build, 'test-classes'), os.path.join(root, module, build, 'classes')]
        sources += deps + [console]
        entries = [e for e in map(mapped, sources) if e]
        with open(os.path.join(out, name), 'w') as f:
            f.write('\n'.join(entries) + '\n')
        for source in sources:
            entry = mapped(source)
            if not entry or entry in main:
                continue
            key = artifact(source)
            if key:
                if versions.setdefault(key[0], key[1]) != key[1]:
                    print('   --main class path: %s %s, not %s (%s)' % (key[0], versions[key[0]], key[1], name))
                    continue
            main.append(entry)
    with open(os.path.join(out, 'main'), 'w') as f:
        f.write('\n'.join(main) + '\n')
    broker = [mapped(e) for e in open(broker_list).read().strip().split(':')]
    with open(os.path.join(out, 'kafka-broker'), 'w') as f:
        f.write('\n'.join(e for e in broker if e) + '\n')
    with open(os.path.join(stage, 'jars.list'), 'w') as f:
        f.write(''.join(p + '\n' for p in sorted(jars.values())))
    with open(os.path.join(stage, 'dirs.list'), 'w') as f:
        f.write(''.join('%s\t%s\n' % kv for kv in sorted(dirs.items())))
    print('   jars left out: ' + ' '.join(sorted(dropped)))

# --- class files: the constant pool (for references) and the Code attributes (for local variable tables) ---
REF = re.compile(rb'L([A-Za-z0-9_/$]+);')
DEBUG = {b'LocalVariableTable', b'LocalVariableTypeTable'}  # in Code attributes
COMPILER_ONLY = {b'ScalaInlineInfo'}  # class attribute read by the Scala compiler's inliner only
# Jars whose classes also lose their line numbers (0.9 MB packed): Pekko and Scala 2.12 inside flink-rpc-akka.jar
# (Flink's RPC actors) and the broker's scala-library, whose frames say little in a stack trace.
NO_LINES = re.compile(r'^(flink-rpc-akka\.jar|scala-library-)')

CLASS_NAME = re.compile(rb'^[a-z][a-z0-9_]*(\.[A-Za-z0-9_$]+)+$')

def constant_pool(b):  # -> (utf8 entries by index, class entry name indexes, string entry indexes, offset after it)
    n = struct.unpack_from('>H', b, 8)[0]; i = 10; k = 1; utf = {}; classes = []; strings = []
    while k < n:
        t = b[i]
        if t == 1:
            length = struct.unpack_from('>H', b, i + 1)[0]; utf[k] = b[i + 3:i + 3 + length]; i += 3 + length
        elif t == 7: classes.append(struct.unpack_from('>H', b, i + 1)[0]); i += 3
        elif t == 8: strings.append(struct.unpack_from('>H', b, i + 1)[0]); i += 3
        elif t in (3, 4, 9, 10, 11, 12, 17, 18): i += 5
        elif t in (5, 6): i += 9; k += 1
        elif t in (16, 19, 20): i += 3
        elif t == 15: i += 4
        else: raise ValueError('constant pool tag %d' % t)
        k += 1
    return utf, classes, strings, i

def references(b):  # the classes a class file names: class entries, descriptors, strings that look like class names
    utf, classes, strings, _ = constant_pool(b)
    out = set()
    for c in classes:
        s = utf.get(c, b'')
        out.update(m.decode() for m in REF.findall(s)) if s.startswith(b'[') else out.add(s.decode())
    for s in utf.values():
        if b';' in s:
            out.update(m.decode() for m in REF.findall(s))
    for c in strings:
        s = utf.get(c, b'')
        if CLASS_NAME.match(s):
            out.add(s.decode().replace('.', '/'))
    return out

def strip_debug(b, lines=False):  # the class without LocalVariable(Type)Table in its methods' Code (and lines)
    drop = DEBUG | {b'LineNumberTable'} if lines else DEBUG
    u2 = lambda i: struct.unpack_from('>H', b, i)[0]
    u4 = lambda i: struct.unpack_from('>I', b, i)[0]
    utf, _, _, i = constant_pool(b)
    def attributes(i, in_code, top=False):  # -> (the rewritten attribute table, offset after it)
        count = u2(i); i += 2; parts = []
        for _ in range(count):
            name = utf.get(u2(i)); end = i + 6 + u4(i + 2)
            if (in_code and name in drop) or (top and name in COMPILER_ONLY):
                i = end; continue
            if name == b'Code' and not in_code:
                j = i + 14 + u4(i + 10); j += 2 + 8 * u2(j)
                sub, after = attributes(j, True)
                if after != end:
                    raise ValueError('Code attribute length')
                body = b[i + 6:j] + sub
                parts.append(b[i:i + 2] + struct.pack('>I', len(body)) + body)
            else:
                parts.append(b[i:end])
            i = end
        return struct.pack('>H', len(parts)) + b''.join(parts), i
    i += 6; i += 2 + 2 * u2(i)
    out = [b[:i]]
    for _ in range(2):  # fields, methods
        count = u2(i); out.append(b[i:i + 2]); i += 2
        for _ in range(count):
            out.append(b[i:i + 6]); table, i = attributes(i + 6, False); out.append(table)
    table, i = attributes(i, False, True); out.append(table)
    if i != len(b):
        raise ValueError('trailing bytes')
    return b''.join(out)

# --- jars ---
NATIVE = re.compile(r'\.(so(\.[0-9]+)*|dll|dylib|jnilib|a)$', re.I)

# Parts of jars: flink-runtime itself uses the guava that flink-shaded-zookeeper shades for Curator (e.g.
# OneInputStreamTask); ZooKeeper and Curator proper serve ZooKeeper high availability only, which nothing here runs.
PARTS = [(re.compile(r'^flink-shaded-zookeeper-3-'), re.compile(r'^(META-INF/|org/apache/flink/shaded/curator5/com/google/)'))]

def keep(name, jar=''):
    if any(j.match(jar) and not part.match(name) for j, part in PARTS):
        return False
    if name.startswith('META-INF/native-image/') or name.startswith('web/'):
        return False  # GraalVM hints; flink-runtime-web's dashboard files (only that jar has a top-level web/)
    if NATIVE.search(name):  # Linux x86-64 glibc only, and no QUIC
        low = name.lower()
        return bool(re.search(r'linux|epoll|io_uring', low) and re.search(r'x86[_-]64|amd64|linux64', low)
                    and 'musl' not in low and 'quiche' not in low)
    return True

def read_jar(data, jar=''):  # -> [(ZipInfo, bytes or nested list)] of the entries kept
    entries = []
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        for info in src.infolist():
            if keep(info.filename, jar):
                body = src.read(info)
                entries.append((info, read_jar(body) if info.filename.endswith('.jar') else body))
    return entries

def write_jar(entries, pruned, stats, jar):
    out = io.BytesIO()
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_STORED) as dst:
        for info, body in entries:
            name = info.filename
            if name in pruned:
                stats['pruned'] += 1; continue
            if isinstance(body, list):  # flink-rpc-akka.jar inside flink-rpc-akka-loader: stored too
                body = write_jar(body, set(), stats, name)
            elif NATIVE.search(name) and name.endswith('.so') and STRIP:
                body = strip_native(body, stats)
            elif name.endswith('.class') and not name.endswith('module-info.class'):
                try:
                    stripped = strip_debug(body, bool(NO_LINES.match(jar)))
                    stats['debug'] += len(body) - len(stripped); body = stripped
                except Exception:
                    stats['unparsed'] += 1
            entry = zipfile.ZipInfo(name, info.date_time)
            entry.external_attr = info.external_attr
            dst.writestr(entry, body, zipfile.ZIP_STORED)
    return out.getvalue()

STRIP = shutil.which('strip')

def strip_native(body, stats):  # without the symbol table (the dynamic symbols JNI needs stay)
    with tempfile.NamedTemporaryFile(suffix='.so') as f:
        f.write(body); f.flush()
        if subprocess.run([STRIP, '--strip-unneeded', f.name], capture_output=True).returncode != 0:
            return body
        stripped = open(f.name, 'rb').read()
    stats['native'] += len(body) - len(stripped)
    return stripped

def walk(entries):
    for info, body in entries:
        if isinstance(body, list):
            yield from walk(body)
        else:
            yield info.filename, body

# Jars of which only the classes something else names stay: Flink's -tests jars (mostly Flink's own test cases) and
# the Table API that flink-test-utils drags in (TestStreamEnvironment reads a few of its options).
PRUNED_JARS = re.compile(r'(-tests\.jar$|^flink-table-(common|api-java)-)')
# this project's SQL-only classes (RWKV_EMBED and its tests: no GPU test runs them) keep no Table API classes
SQL_ONLY = re.compile(r'(RwkvEmbedFunction|LiveStates|SqlFunctionBench|SqlKafkaITCase)[$.]')

def repack(dest, jar_list, class_dirs):
    """Copies the jars stored (no compression) into dest. Other systems' natives go (keep), the others lose their
    symbol tables; of the classes in PRUNED_JARS only those stay that this project's classes or the other jars name,
    directly or through other kept ones (as class, in a descriptor, as a string that looks like a class name, in
    META-INF/services); every class loses its local variable tables (debuggers only: line numbers stay)."""
    paths = [l.strip() for l in open(jar_list) if l.strip()]
    jars = {p: read_jar(open(p, 'rb').read(), os.path.basename(p)) for p in paths}
    cases, graph, roots = {}, {}, set()
    for path, entries in jars.items():
        tests_jar = bool(PRUNED_JARS.search(os.path.basename(path)))
        for name, body in walk(entries):
            if name.startswith('META-INF/services/'):
                roots.update(l.split('#')[0].strip().replace('.', '/') for l in body.decode('utf8', 'replace').splitlines())
            if not name.endswith('.class') or name.endswith('module-info.class'):
                continue
            try:
                refs = references(body)
            except Exception:
                refs = set()
            if tests_jar:
                cases[name[:-6]] = path; graph[name[:-6]] = refs
            else:
                roots |= refs
    for directory in class_dirs:
        for folder, _, files in os.walk(directory):
            roots.update(c for f in files if f.endswith('.class') and not SQL_ONLY.search(f)
                         for c in references(open(os.path.join(folder, f), 'rb').read()))
    needed, todo = set(), [c for c in roots if c in cases]
    while todo:
        c = todo.pop()
        if c not in needed:
            needed.add(c); todo.extend(r for r in graph[c] if r in cases)
    os.makedirs(dest, exist_ok=True)
    stats = {'pruned': 0, 'debug': 0, 'unparsed': 0, 'native': 0}
    for path, entries in jars.items():
        pruned = {c + '.class' for c in cases if cases[c] == path and c not in needed}
        with open(os.path.join(dest, os.path.basename(path)), 'wb') as f:
            f.write(write_jar(entries, pruned, stats, os.path.basename(path)))
    print('   -tests and table jars: %d classes left out, %d kept; %.1f MB of local variable (and some line number) tables and '
          '%.1f MB of native '
          'symbol tables stripped; %d class files left as they were (not parsed)'
          % (stats['pruned'], len(needed), stats['debug'] / 1e6, stats['native'] / 1e6, stats['unparsed']))

def jre_excludes(java_home, modules):
    """jlink --exclude-resources patterns that cut java.desktop down to java.beans (and what it loads: com.sun.beans,
    javax.swing.SwingContainer) and take XPath and BCEL (XSLTC's bytecode generator) out of java.xml (DOM, SAX, StAX
    and the identity transformer stay), each keeping one file in every package it empties (jlink insists that
    exported packages exist)."""
    listing = subprocess.run([os.path.join(java_home, 'bin', 'jimage'), 'list', os.path.join(java_home, 'lib', 'modules')],
                             capture_output=True, text=True, check=True).stdout
    cuts = {'java.desktop': (lambda f: not f.startswith(('java/beans/', 'com/sun/beans/', 'module-info.class',
                                                           'javax/swing/SwingContainer.class'))),
            'java.xml': (lambda f: f.startswith(('com/sun/org/apache/bcel/', 'com/sun/org/apache/xpath/internal/')))}
    module, files = None, {}
    for line in listing.splitlines():
        if line.startswith('Module: '):
            module = line.split()[1]
        elif module in cuts and '/' in line.strip():
            files.setdefault(module, []).append(line.strip())
    patterns = []
    for module, cut in cuts.items():
        if module not in modules.split(','):
            continue
        packages = {}
        for f in files.get(module, []):
            if cut(f):
                packages.setdefault(f.rsplit('/', 1)[0], []).append(f)
        kept = [min(fs, key=lambda f: (len(f), f)) for _, fs in sorted(packages.items())]
        kept += [f for f in files.get(module, []) if not cut(f) and '/' in f and f.rsplit('/', 1)[0] in packages]
        kept = [re.escape(f) + '$' for f in kept]
        cut_paths = '|'.join(re.escape(p) + '/' for p in sorted(packages))
        patterns.append('%s/(?!%s)(%s)' % (re.escape(module), '|'.join(kept), cut_paths))
    print('regex:/(%s).*' % '|'.join(patterns))  # no further ':' (no "(?:"): jlink splits its options there

if sys.argv[1] == 'plan':
    plan(*sys.argv[2:8], modules=sys.argv[8:])
elif sys.argv[1] == 'repack':
    repack(sys.argv[2], sys.argv[3], sys.argv[4:])
elif sys.argv[1] == 'case-refs':  # the classes of PRUNED_JARS that this project's classes name (they stay)
    tests = set()
    for path in (l.strip() for l in open(sys.argv[2])):
        if PRUNED_JARS.search(os.path.basename(path)):
            tests.update(n[:-6] for n in zipfile.ZipFile(path).namelist() if n.endswith('.class'))
    found = set()
    for directory in sys.argv[3:]:
        for folder, _, files in os.walk(directory):
            found.update(c for f in files if f.endswith('.class')
                         for c in references(open(os.path.join(folder, f), 'rb').read()) if c in tests)
    print('\n'.join(sorted(found)))
elif sys.argv[1] == 'jre-excludes':
    jre_excludes(sys.argv[2], sys.argv[3])
PY

echo "== class paths"
python3 "$stage/bundle.py" plan "$root" "$build" "$stage" "$drop_jars" "$console" "$broker_list" "${modules[@]}"
while IFS=$'\t' read -r from to; do
  mkdir -p "$stage/$(dirname "$to")"
  cp -r "$from" "$stage/$to"
done < "$stage/dirs.list"
pack "$gpu/classes.tar.xz" "-9 -T0" classes

# The jars: rebuilt when a jar (path, size), this script's trimming rules or the classes of Flink's -tests
# jars that this project's classes name change.
lib_key=$( { cat "$stage/bundle.py"; echo "$drop_jars"; xargs stat -c '%n %s' < "$stage/jars.list" | sed "s:^$stage/::"
             python3 "$stage/bundle.py" case-refs "$stage/jars.list" "$stage"/classes/main/* "$stage"/classes/test/*; } | key_of)
if fresh "$gpu/lib.tar.xz" "$lib_key"; then
  echo "== jars: unchanged"
else
  echo "== jars: $(wc -l < "$stage/jars.list") jars, repacked without compression and xz-compressed (~5 minutes)"
  python3 "$stage/bundle.py" repack "$stage/lib" "$stage/jars.list" "$stage"/classes/main/* "$stage"/classes/test/*
  echo "   $(du -sm "$stage/lib" | cut -f1) MB unpacked"
  # One solid stream with a dictionary larger than all jars: identical classes in different jars (netty in
  # flink-shaded-netty and inside flink-rpc-akka.jar, JUnit in the console launcher) cost once. Single-threaded,
  # about 4 GB of memory here; unpacking needs 384 MiB.
  pack "$gpu/lib.tar.xz" "--threads=1 --lzma2=preset=9e,dict=384MiB" lib
  echo "$lib_key" > "$gpu/lib.tar.xz.key"
  rm -rf "$stage/lib"
fi

echo "== reference data (the layout the tests expect under -Drwkv.shared.dir)"
mkdir -p "$stage/shared/reference/rwkv-cpp-tests"
if [[ -d $reference/rwkv-cpp-tests ]]; then
  read -r -a patterns <<< "${GPU_MODELS:-tiny-rwkv-7v0-834K-FP32.bin tiny-rwkv-4v0-660K-FP32.bin tiny-rwkv-5v1-730K-FP32.bin tiny-rwkv-5v2-730K-FP32.bin tiny-rwkv-6v0-3m-Q5_1.bin expected-logits-*.bin SOURCES.md}"
  max_bytes=$(( ${GPU_MAX_FILE_MB:-5} * 1024 * 1024 ))
  for pattern in "${patterns[@]}"; do
    for file in "$reference/rwkv-cpp-tests"/$pattern; do
      [[ -f $file ]] || continue
      if (( $(stat -c %s "$file") > max_bytes )); then
        echo "   skipping $(basename "$file") ($(du -h "$file" | cut -f1) > ${GPU_MAX_FILE_MB:-5} MB)"
        continue
      fi
      cp "$file" "$stage/shared/reference/rwkv-cpp-tests/"
    done
  done
else
  echo "   $reference/rwkv-cpp-tests not found: the tests that need it will skip"
fi
if [[ -f $reference/rwkv_vocab_v20230424.txt ]]; then
  cp "$reference/rwkv_vocab_v20230424.txt" "$stage/shared/reference/"
else
  echo "   $reference/rwkv_vocab_v20230424.txt not found: the tests of World-vocabulary models will skip"
fi
shared_key=$( (cd "$stage" && find shared -type f -printf '%p %s\n' | sort && find shared -type f -print0 | sort -z \
  | xargs -0 -r cat) | key_of)
if fresh "$gpu/shared.tar.xz" "$shared_key"; then
  echo "   unchanged"
else
  # Mostly float weights: literal coding by 4-byte position (lc=0,lp=2,pb=2) packs them 5% smaller.
  pack "$gpu/shared.tar.xz" "-T0 --lzma2=preset=9e,lc=0,lp=2,pb=2" shared
  echo "$shared_key" > "$gpu/shared.tar.xz.key"
fi

# The runtime: jlink'd from this JDK, uncompressed (xz does better on the whole image than jlink's zip), native
# libraries stripped of their symbol tables (crash reports name fewer internal functions), java.desktop reduced to
# java.beans (log4j-core, kryo, jackson and commons-lang3 use it; the rest is AWT, Swing, imaging, sound, printing),
# java.xml without XPath and XSLTC's bytecode generator (see jre_excludes in bundle.py).
jre_recipe="$jre_modules desktop=beans xml=no-bcel,xpath strip=unneeded"
jre_key=$( { echo "$jre_recipe"; "$JAVA_HOME/bin/java" -version 2>&1; } | key_of)
if fresh "$gpu/jre.tar.xz" "$jre_key"; then
  echo "== Java runtime: unchanged"
else
  echo "== Java runtime for the device: $jre_modules"
  cuts=(--exclude-resources "$(python3 "$stage/bundle.py" jre-excludes "$JAVA_HOME" "$jre_modules")")
  [[ ,$jre_modules, == *,java.desktop,* ]] && cuts+=(--exclude-files '/java.desktop/**')  # AWT's native libraries
  "$JAVA_HOME/bin/jlink" --add-modules "$jre_modules" "${cuts[@]}" --strip-debug --no-header-files \
    --no-man-pages --output "$stage/jre" 2>&1 | grep -v 'Using incubator modules' || true
  if command -v strip >/dev/null; then
    find "$stage/jre" -name '*.so' -exec strip --strip-unneeded {} +
  fi
  "$stage/jre/bin/java" -version 2>&1 | head -1 | sed 's/^/   /'
  echo "   $(du -sm "$stage/jre" | cut -f1) MB unpacked"
  # The x86 branch filter packs machine code (libjvm.so is a third of the image) ~8% smaller.
  pack "$gpu/jre.tar.xz" "--threads=1 --x86 --lzma2=preset=9e,dict=128MiB" jre
  echo "$jre_key" > "$gpu/jre.tar.xz.key"
fi

mib() { awk -v b="$1" 'BEGIN { printf "%6.1f", b / 1048576 }'; }
echo "== staged (MiB):"
for part in jre lib classes shared; do
  echo "   $(mib "$(stat -c %s "$gpu/$part.tar.xz")")  $part.tar.xz"
done
# What travels: the tracked files and the untracked ones git does not ignore, and .gpu (carried): 64 MiB at most.
gpu_bytes=$(find "$gpu" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
  | awk '{ s += $1 } END { print s + 0 }')
echo "   total $(mib "$gpu_bytes") in $gpu, with the working tree ($(mib "$tree_bytes")) $(mib $((gpu_bytes + tree_bytes)))"
if (( gpu_bytes + tree_bytes > 63 * 1048576 )); then
  echo "warning: .gpu and the working tree come to over 63 MiB; the device tool carries at most 64 MiB (narrow" \
    "GPU_MODELS, or move .gpu/baseline-engine.jar away)" >&2
fi
echo "next: the device tool with carry [\".gpu\"] and command: bash native-bindings/gpu-check.sh"
