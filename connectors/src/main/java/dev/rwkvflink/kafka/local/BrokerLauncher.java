package dev.rwkvflink.kafka.local;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.util.Arrays;

/**
 * Main class of the broker's child JVM: starts a watchdog that halts the JVM when its standard input closes, then
 * runs the real main class ({@code kafka.Kafka}) given as the first argument.
 *
 * <p>{@link EmbeddedKafka} keeps the child's standard input open; when the parent JVM dies however it dies (even
 * killed), the pipe closes and the broker goes with it instead of lingering on its ports. Uses only JDK classes:
 * {@link EmbeddedKafka} copies this class file next to the broker and puts it first on the child's classpath.
 */
final class BrokerLauncher {

    private BrokerLauncher() {}

    public static void main(String[] args) throws Throwable {
        Thread watchdog = new Thread(BrokerLauncher::haltWhenParentGoes, "parent-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        Class<?> mainClass = Class.forName(args[0]);
        try {
            mainClass.getMethod("main", String[].class).invoke(null, (Object) Arrays.copyOfRange(args, 1, args.length));
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private static void haltWhenParentGoes() {
        try {
            while (System.in.read() >= 0) {
                // the parent never writes; just wait for end of input
            }
        } catch (IOException ignored) {
            // a broken pipe means the same as end of input
        }
        Runtime.getRuntime().halt(3);
    }
}
