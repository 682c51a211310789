// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL (ending in /api),
// CONDUCTOR_AUTH_KEY and CONDUCTOR_AUTH_SECRET in its environment, read from the credential
// store; WorkflowTaskHost reads them (conductor-csharp 1.1.1 and later; 1.1.0 read KEY/SECRET).
// Nothing secret lives in this directory.
//
// The worker is a class of its own rather than a [WorkerTask] method: an attribute's worker id
// must be a constant, and this one polls under the worker id 'provision' gives each process
// (ORKES_PROVISION_WORKER_ID), so that the tasks of a stopped process can be handed on.
using Conductor.Client.Extensions;
using Conductor.Client.Interfaces;
using Conductor.Client.Models;
using Conductor.Client.Worker;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Greetings
{
    public class GreetingsWorker : IWorkflowTask
    {
        public string TaskType => "greetings";

        public WorkflowTaskExecutorConfiguration WorkerSettings { get; } = new WorkflowTaskExecutorConfiguration
        {
            BatchSize = 1,
            PollInterval = TimeSpan.FromMilliseconds(100),
            WorkerId = Environment.GetEnvironmentVariable("ORKES_PROVISION_WORKER_ID") ?? Environment.MachineName,
        };

        // Input "name", output "greeting": "Hello, <name>".
        public System.Threading.Tasks.Task<TaskResult> Execute(Conductor.Client.Models.Task task,
                                                               CancellationToken token = default)
        {
            var output = new Dictionary<string, object>
            {
                ["greeting"] = "Hello, " + task.InputData.GetValueOrDefault("name", null)
            };
            return System.Threading.Tasks.Task.FromResult(task.Completed(output));
        }

        [Obsolete("the SDK calls the asynchronous Execute")]
        public TaskResult Execute(Conductor.Client.Models.Task task) => Execute(task, default).GetAwaiter().GetResult();

        public static void Main(string[] args)
        {
            // The host stops on SIGTERM and Ctrl+C, which is how 'provision' stops a worker.
            var host = WorkflowTaskHost.CreateWorkerHost(LogLevel.Information, new GreetingsWorker());
            host.Run();
        }
    }
}
