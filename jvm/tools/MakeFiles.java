// Creates N empty files <dir>/<prefix><i zero-padded to 7> on the cluster of fs.defaultFS, on T threads (the
// benchmarks' 100,000-file directory). Run as a single-file source program:
//   java -cp <conf>:<hadoop classpath> jvm/tools/MakeFiles.java <dir> <prefix> <count> [threads]
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileAlreadyExistsException;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

public class MakeFiles {
  public static void main(String[] args) throws Exception {
    Path dir = new Path(args[0]);
    String prefix = args[1];
    int count = Integer.parseInt(args[2]);
    int threads = args.length > 3 ? Integer.parseInt(args[3]) : 8;
    FileSystem fs = FileSystem.get(new Configuration());
    fs.mkdirs(dir);
    ExecutorService pool = Executors.newFixedThreadPool(threads);
    AtomicReference<Exception> failure = new AtomicReference<>();
    for (int t = 0; t < threads; t++) {
      final int first = t;
      pool.submit(() -> {
        for (int i = first; i < count && failure.get() == null; i += threads) {
          try {
            fs.create(new Path(dir, String.format("%s%07d", prefix, i)), false).close();
          } catch (FileAlreadyExistsException e) {
            // made by an earlier run
          } catch (Exception e) {
            failure.compareAndSet(null, e);
          }
        }
      });
    }
    pool.shutdown();
    pool.awaitTermination(1, TimeUnit.HOURS);
    if (failure.get() != null) throw failure.get();
    System.out.println(count);
  }
}
