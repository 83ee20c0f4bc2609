/**
 * The worker thread that issues one certificate (see issueCertificate in cluster-tls.ts): it gets
 * the job as workerData, answers with one message and ends, taking @peculiar/x509 and what
 * issuing allocated with it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage } from '../core/errors.js';
import { runCertJob, type CertJob } from './cluster-tls.js';

if (!parentPort) throw new Error('server/cert-worker.js runs as a worker thread only');
const port = parentPort;
try {
  port.postMessage({ ok: true, issued: await runCertJob(workerData as CertJob) });
} catch (err) {
  port.postMessage({ ok: false, error: errorMessage(err) });
}
