#!/usr/bin/env node
// claim.mjs: one member presses "claim" once; an app backend's call to voucherd.
//
// The Node.js twin of examples/python/claim.py, with the same flags, output,
// exit codes and retry policy (see there, and README.md "Calling voucherd
// from your backend"):
//
//   node claim.mjs --target HOST:PORT --campaign ID --member ID [--token-file F]
//                  [--deadline-ms N] [--attempts N] [--budget-ms N] [--request-id R]
//                  [--service-config FILE]
//
// Retried with the same request_id, after RetryInfo.retry_delay (if any) plus
// exponential backoff with full jitter: UNAVAILABLE; RESOURCE_EXHAUSTED
// carrying a RetryInfo; DEADLINE_EXCEEDED of one attempt while the budget
// lasts. Everything else is final, named by google.rpc.ErrorInfo.reason
// (a value name of voucher.v1.ErrorReason).
//
// The contract is loaded at run time by @grpc/proto-loader from the
// repository's proto/ ($VOUCHERD_PROTO_DIR), and google.rpc.Status /
// ErrorInfo / RetryInfo by protobufjs from Debian's
// golang-github-gogo-googleapis-dev ($GOOGLEAPIS_PROTO_DIR): nothing is
// generated or copied. npm ci in this folder installs the pinned packages.

import { readFileSync } from 'node:fs';
import { randomUUID, randomInt } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

const EXIT_VOUCHER = 0;
const EXIT_NO_VOUCHER = 1;
const EXIT_USAGE = 2;

const ERROR_DOMAIN = 'voucherd';
// Backoff between attempts (the same figures as deploy/grpc/service_config.json).
const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;
const BACKOFF_MULTIPLIER = 2;

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIR = process.env.VOUCHERD_PROTO_DIR || path.join(here, '..', '..', 'proto');
const GOOGLEAPIS_DIR =
  process.env.GOOGLEAPIS_PROTO_DIR || '/usr/share/gocode/src/github.com/gogo/googleapis';

const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k]));

function usage(message) {
  process.stderr.write(
    `claim.mjs: ${message}\n` +
      'usage: claim.mjs --target HOST:PORT --campaign ID --member ID [--token-file F]\n' +
      '                 [--deadline-ms N] [--attempts N] [--budget-ms N] [--request-id R]\n' +
      '                 [--service-config FILE]\n',
  );
  process.exit(EXIT_USAGE);
}

function positive(name, text, fallback) {
  if (text === undefined) return fallback;
  if (!/^[0-9]+$/.test(text) || Number(text) < 1) usage(`--${name} must be a positive integer`);
  return Number(text);
}

function parseFlags(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        target: { type: 'string' },
        campaign: { type: 'string' },
        member: { type: 'string' },
        'token-file': { type: 'string' },
        'deadline-ms': { type: 'string' },
        attempts: { type: 'string' },
        'budget-ms': { type: 'string' },
        'request-id': { type: 'string' },
        'service-config': { type: 'string' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    usage(e.message);
  }
  for (const required of ['target', 'campaign', 'member']) {
    if (!values[required]) usage(`--${required} is required`);
  }
  if (values['service-config'] && (values.attempts || values['deadline-ms'])) {
    usage(
      '--service-config hands retries to gRPC: --attempts and --deadline-ms do not apply ' +
        '(use --budget-ms)',
    );
  }
  return {
    target: values.target,
    campaign: values.campaign,
    member: values.member,
    tokenFile: values['token-file'],
    deadlineMs: positive('deadline-ms', values['deadline-ms'], 2000),
    attempts: positive('attempts', values.attempts, 5),
    budgetMs: positive('budget-ms', values['budget-ms'], 10000),
    requestId: values['request-id'] || randomUUID(),
    serviceConfig: values['service-config'],
  };
}

function readToken(flags) {
  if (flags.tokenFile) {
    let text;
    try {
      text = readFileSync(flags.tokenFile, 'utf8');
    } catch (e) {
      usage(`--token-file: ${e.message}`);
    }
    const token = text.split('\n', 1)[0].trim();
    if (!token) usage(`--token-file ${flags.tokenFile}: the first line is empty`);
    return token;
  }
  return (process.env.VOUCHERD_TOKEN || '').trim() || null;
}

// google.rpc.Status and its details, decoded with protobufjs from the .proto
// files (protobufjs knows google/protobuf/any.proto and duration.proto).
function loadErrorModel() {
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => path.join(GOOGLEAPIS_DIR, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return {
    Status: root.lookupType('google.rpc.Status'),
    ErrorInfo: root.lookupType('google.rpc.ErrorInfo'),
    RetryInfo: root.lookupType('google.rpc.RetryInfo'),
  };
}

// { reason, retryDelayMs } from the grpc-status-details-bin trailer: the
// ErrorInfo reason (domain "voucherd") or null, RetryInfo.retry_delay or null.
function errorDetails(model, err) {
  let reason = null;
  let retryDelayMs = null;
  const [bin] = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!bin) return { reason, retryDelayMs };
  const status = model.Status.decode(bin);
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    if (typeName === 'google.rpc.ErrorInfo') {
      const info = model.ErrorInfo.decode(any.value);
      if (info.domain === ERROR_DOMAIN) reason = info.reason;
    } else if (typeName === 'google.rpc.RetryInfo') {
      const retry = model.RetryInfo.toObject(model.RetryInfo.decode(any.value), { longs: Number });
      const d = retry.retry_delay || {};
      retryDelayMs = (d.seconds || 0) * 1000 + (d.nanos || 0) / 1e6;
    }
  }
  return { reason, retryDelayMs };
}

function worthRetrying(code, retryDelayMs) {
  if (code === grpc.status.UNAVAILABLE) return true;
  if (code === grpc.status.RESOURCE_EXHAUSTED) return retryDelayMs !== null;
  // Only with the same request_id on every attempt (see claim.py).
  return code === grpc.status.DEADLINE_EXCEEDED;
}

// already_claimed with this press's own request_id: an earlier attempt of
// this press was written after all (its answer was lost), and the retry found
// it. For the member that is this press's voucher, not an old one.
function printVoucher(response, requestId) {
  const { code } = response.voucher;
  const earlier = response.already_claimed && response.voucher.request_id !== requestId;
  process.stdout.write(earlier ? `${code} already claimed\n` : `${code}\n`);
  return EXIT_VOUCHER;
}

function refusal(err, reason) {
  return `${reason || CODE_NAMES[err.code]} (${err.details})`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const flags = parseFlags(process.argv.slice(2));
  const token = readToken(flags);
  const options = {};
  if (flags.serviceConfig) {
    try {
      options['grpc.service_config'] = readFileSync(flags.serviceConfig, 'utf8');
    } catch (e) {
      usage(`--service-config: ${e.message}`);
    }
  }

  const definition = protoLoader.loadSync('voucher/v1/voucher.proto', {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const v1 = grpc.loadPackageDefinition(definition).voucher.v1;
  const errorModel = loadErrorModel();
  // Plaintext: this example talks to loopback. Anywhere else, use TLS:
  // grpc.credentials.createSsl(caPem).
  const client = new v1.VoucherService(flags.target, grpc.credentials.createInsecure(), options);
  const metadata = new grpc.Metadata();
  if (token) metadata.set('authorization', `Bearer ${token}`);
  const request = {
    campaign_id: flags.campaign,
    member_id: flags.member,
    request_id: flags.requestId,
  };
  const claim = (timeoutMs) =>
    new Promise((resolve, reject) => {
      client.Claim(request, metadata, { deadline: Date.now() + timeoutMs }, (err, response) =>
        err ? reject(err) : resolve(response),
      );
    });

  try {
    if (flags.serviceConfig) {
      // gRPC retries inside this one call, within its deadline.
      try {
        return printVoucher(await claim(flags.budgetMs), flags.requestId);
      } catch (err) {
        const { reason } = errorDetails(errorModel, err);
        process.stderr.write(`no voucher: ${refusal(err, reason)}\n`);
        return EXIT_NO_VOUCHER;
      }
    }

    const budgetEnd = performance.now() + flags.budgetMs;
    for (let attempt = 1; attempt <= flags.attempts; attempt++) {
      const timeoutMs = Math.min(flags.deadlineMs, budgetEnd - performance.now());
      try {
        return printVoucher(await claim(timeoutMs), flags.requestId);
      } catch (err) {
        if (err.code === undefined) throw err; // not a gRPC status: a bug here
        const { reason, retryDelayMs } = errorDetails(errorModel, err);
        if (!worthRetrying(err.code, retryDelayMs)) {
          process.stderr.write(`no voucher: ${refusal(err, reason)}\n`);
          return EXIT_NO_VOUCHER;
        }
        const cap = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * BACKOFF_MULTIPLIER ** (attempt - 1));
        // Never sooner than voucherd asked, and jittered on top of it: a
        // crowd told "200 ms" must not come back in step.
        const wait = (retryDelayMs ?? 0) + randomInt(0, Math.floor(cap) + 1);
        if (attempt === flags.attempts || performance.now() + wait >= budgetEnd) {
          const why =
            attempt === flags.attempts ? `${attempt} attempt(s)` : `the ${flags.budgetMs} ms budget`;
          process.stderr.write(
            `no voucher: ${refusal(err, reason)}; gave up after ${why}. ` +
              `The claim may have been written: press again with ` +
              `--request-id ${flags.requestId} to find out\n`,
          );
          return EXIT_NO_VOUCHER;
        }
        const asked = retryDelayMs === null ? '-' : `${Math.round(retryDelayMs)} ms`;
        process.stderr.write(
          `attempt ${attempt}: ${CODE_NAMES[err.code]} ${reason || '-'} ` +
            `retry_delay ${asked}; retrying in ${Math.round(wait)} ms\n`,
        );
        await sleep(wait);
      }
    }
    return EXIT_NO_VOUCHER; // not reached: the loop returns on its last attempt
  } finally {
    client.close();
  }
}

process.exitCode = await main();
