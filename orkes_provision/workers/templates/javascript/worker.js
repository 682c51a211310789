// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and
// CONDUCTOR_AUTH_SECRET in its environment, read from the credential store; OrkesClients.from()
// reads them. Nothing secret lives in this directory.
//
// It polls under the worker id 'provision' gives each process (ORKES_PROVISION_WORKER_ID), so that
// the tasks of a stopped process can be handed on: TaskManager takes a workerID (TaskHandler gives
// workers listed in code the host name). Without one the SDK uses os.hostname().
import { OrkesClients, TaskManager } from "@io-orkes/conductor-javascript";

const DRAIN_MS = 10_000; // how long a stop waits for the task at hand; 'stop_grace' leaves room for it

// Input "name", output "greeting": "Hello, <name>".
const greetings = {
  taskDefName: "greetings",
  concurrency: 1,
  pollInterval: 100,
  execute: async (task) => {
    inFlight += 1;
    return { status: "COMPLETED", outputData: { greeting: `Hello, ${task.inputData?.name}` } };
  },
};

// A task is done once its result reached the server (or could not): the SDK reports both.
let inFlight = 0;
const done = () => { inFlight = Math.max(0, inFlight - 1); };
const listener = { onTaskUpdateCompleted: done, onTaskUpdateFailure: done };

const clients = await OrkesClients.from();
const workerID = process.env.ORKES_PROVISION_WORKER_ID || undefined;
const manager = new TaskManager(clients.getClient(), [greetings], {
  options: { workerID },
  eventListeners: [listener],
});
manager.startPolling();
console.log(`greetings worker polling as ${manager.options.workerID}`);

// Ctrl-C (SIGINT) and SIGTERM (from 'provision' or Kubernetes): poll no more, let the task at hand
// report its result (up to DRAIN_MS), then exit.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    await manager.stopPolling();
    const deadline = Date.now() + DRAIN_MS;
    while (inFlight > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    process.exit(signal === "SIGINT" ? 130 : 0); // 130: as a shell reports Ctrl-C
  });
}
