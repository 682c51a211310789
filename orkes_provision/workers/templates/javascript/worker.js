// A Conductor worker for the task "greetings", as in the Orkes quickstart.
//
// 'provision worker run greetings' starts it with CONDUCTOR_SERVER_URL, CONDUCTOR_AUTH_KEY and
// CONDUCTOR_AUTH_SECRET in its environment, read from the credential store; OrkesClients.from()
// reads them. Nothing secret lives in this directory.
import { OrkesClients, TaskHandler } from "@io-orkes/conductor-javascript";

// Input "name", output "greeting": "Hello, <name>".
const greetings = {
  taskDefName: "greetings",
  concurrency: 1,
  pollInterval: 100,
  execute: async (task) => ({
    status: "COMPLETED",
    outputData: { greeting: `Hello, ${task.inputData?.name}` },
  }),
};

const clients = await OrkesClients.from();
const handler = new TaskHandler({
  client: clients.getClient(),
  workers: [greetings],
  scanForDecorated: false,
});
await handler.startWorkers();
console.log("greetings worker polling");

// Ctrl-C (SIGINT) and SIGTERM (from 'provision' or Kubernetes): finish the task at hand, then exit.
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    await handler.stopWorkers();
    process.exit(signal === "SIGINT" ? 130 : 0); // 130: as a shell reports Ctrl-C
  });
}
