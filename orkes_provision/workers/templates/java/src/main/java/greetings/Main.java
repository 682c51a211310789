package greetings;

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

    /** Input "name", output "greeting": "Hello, name". */
    static final class Greetings implements Worker {
        @Override
        public String getTaskDefName() {
            return "greetings";
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
        List<Worker> workers = List.of(new Greetings());
        TaskRunnerConfigurer configurer = new TaskRunnerConfigurer.Builder(taskClient, workers)
                .withThreadCount(1)
                .build();
        // Ctrl-C (SIGINT) and SIGTERM (from 'provision' or Kubernetes) run this hook: finish the task
        // at hand, then stop.
        Runtime.getRuntime().addShutdownHook(new Thread(configurer::shutdown));
        configurer.init();
    }
}
