package greetings;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.List;

import com.netflix.conductor.client.automator.TaskRunnerConfigurer;
import com.netflix.conductor.client.http.TaskClient;
import com.netflix.conductor.client.worker.Worker;
import com.netflix.conductor.common.metadata.tasks.Task;
import com.netflix.conductor.common.metadata.tasks.TaskResult;

import io.orkes.conductor.client.ApiClient;

/**
 * A Conductor worker for the task "greetings", as in the Orkes quickstart.
 *
 * <p>'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and
 * CONDUCTOR_AUTH_SECRET in its environment, read from the credential store; new ApiClient()
 * reads them. Nothing secret lives in this directory.
 */
public class Main {

    /** Seconds a stop waits for the task at hand; 'stop_grace' in orkes-provision.toml leaves room for it. */
    static final int DRAIN_SECONDS = 10;

    /**
     * The worker id this process polls under: the one 'provision' gives each process it starts
     * (ORKES_PROVISION_WORKER_ID), so that the tasks of a stopped process can be handed on; else the
     * host name, the SDK's default.
     */
    static String workerId() {
        String given = System.getenv("ORKES_PROVISION_WORKER_ID");
        if (given != null && !given.isBlank()) {
            return given;
        }
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (UnknownHostException e) {
            return "greetings-java";
        }
    }

    /** Input "name", output "greeting": "Hello, name". */
    static final class Greetings implements Worker {
        private final String identity = workerId();

        @Override
        public String getTaskDefName() {
            return "greetings";
        }

        @Override
        public String getIdentity() {
            return identity;
        }

        @Override
        public int getPollingInterval() {
            return 100;
        }

        @Override
        public TaskResult execute(Task task) {
            Object name = task.getInputData().get("name");
            TaskResult result = new TaskResult(task);
            result.addOutputData("greeting", "Hello, " + name);
            result.setStatus(TaskResult.Status.COMPLETED);
            return result;
        }
    }

    public static void main(String[] args) {
        ApiClient client = new ApiClient();
        TaskClient taskClient = new TaskClient(client);
        Greetings greetings = new Greetings();
        TaskRunnerConfigurer configurer = new TaskRunnerConfigurer.Builder(taskClient, List.of(greetings))
                .withThreadCount(1)
                .withShutdownGracePeriodSeconds(DRAIN_SECONDS)
                .build();
        // Ctrl-C (SIGINT) and SIGTERM (from 'provision' or Kubernetes) run this hook: poll no more, finish
        // the task at hand (up to DRAIN_SECONDS), then stop.
        Runtime.getRuntime().addShutdownHook(new Thread(configurer::shutdown));
        configurer.init();
        System.out.println("greetings worker polling as " + greetings.getIdentity());
    }
}
