// Every test process runs kafkajs as the services do: without its 1 ms timer per broker
// connection (runtime/kafka/kafkajs-request-queue.ts). The services' client installs the
// fix itself; this covers the kafkajs clients tests create directly (harness, peers).
import { fixKafkajsIdleTimer } from '../runtime/kafka/kafkajs-request-queue.ts';

fixKafkajsIdleTimer();
