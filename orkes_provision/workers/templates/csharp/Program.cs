// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL (ending in /api),
// CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET in its environment, read from the credential
// store; WorkflowTaskHost reads them. Nothing secret lives in this directory.
using Conductor.Client.Extensions;
using Conductor.Client.Models;
using Conductor.Client.Worker;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Greetings
{
    [WorkerTask]
    public class GreetingsWorker
    {
        // Input "name", output "greeting": "Hello, <name>".
        [WorkerTask(taskType: "greetings", batchSize: 1, pollIntervalMs: 100, workerId: "greetings-csharp")]
        public static TaskResult Greet(Conductor.Client.Models.Task task)
        {
            var result = task.ToTaskResult();
            result.OutputData = new Dictionary<string, object>
            {
                ["greeting"] = "Hello, " + task.InputData.GetValueOrDefault("name", null)
            };
            return result;
        }

        public static void Main(string[] args)
        {
            // The host stops on SIGTERM and Ctrl+C, which is how 'provision' stops a worker.
            var host = WorkflowTaskHost.CreateWorkerHost(LogLevel.Information);
            host.Run();
        }
    }
}
