/*
 * A real Hive Metastore Thrift server for the tests, bound to 127.0.0.1.
 *
 * Hive 2.3's own main class (org.apache.hadoop.hive.metastore.HiveMetaStore) listens on every interface and
 * has no bind-host setting, so this launcher serves the same handler the way that main class does without
 * SASL: HMSHandler behind RetryingHMSHandler, wrapped by TUGIBasedProcessor, on a TServerSocket bound to
 * 127.0.0.1. Compiled by the test fixture against pyspark's jars; configured by the hive-site.xml on the
 * classpath. Usage: java -cp <classes>:<confdir>:<pyspark>/jars/* LocalMetastore PORT
 */
import java.net.InetSocketAddress;

import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hadoop.hive.metastore.HiveMetaStore;
import org.apache.hadoop.hive.metastore.IHMSHandler;
import org.apache.hadoop.hive.metastore.TUGIBasedProcessor;
import org.apache.hadoop.hive.thrift.TUGIContainingTransport;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.server.TThreadPoolServer;
import org.apache.thrift.transport.TServerSocket;

public final class LocalMetastore {
    public static void main(String[] args) throws Throwable {
        int port = Integer.parseInt(args[0]);
        HiveConf conf = new HiveConf(HiveMetaStore.HMSHandler.class);
        IHMSHandler handler = HiveMetaStore.newRetryingHMSHandler(
            new HiveMetaStore.HMSHandler("headwater test metastore", conf, false), conf, false);
        TServerSocket socket = new TServerSocket(new InetSocketAddress("127.0.0.1", port));
        TThreadPoolServer.Args serverArgs = new TThreadPoolServer.Args(socket)
            .processor(new TUGIBasedProcessor<IHMSHandler>(handler))
            .transportFactory(new TUGIContainingTransport.Factory())
            .protocolFactory(new TBinaryProtocol.Factory())
            .minWorkerThreads(2)
            .maxWorkerThreads(64);
        TThreadPoolServer server = new TThreadPoolServer(serverArgs);
        System.out.println("headwater test metastore listening on 127.0.0.1:" + port);
        System.out.flush();
        server.serve();
    }
}
