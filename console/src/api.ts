// The API client: same origin (no CORS), JSON in and out, errors as ApiError (message + hint).
// On a 401 the console asks for a bearer token (kept in sessionStorage, sent as
// `Authorization: Bearer`, never put in a URL) and retries.

import type { Problem, StepDiff, Workflow } from './model'

export class ApiError extends Error {
  status: number
  code: string
  details: unknown
  hint: string
  constructor(status: number, code: string, message: string, details: unknown) {
    super(message)
    this.status = status
    this.code = code
    this.details = details
    this.hint = hintOf(code, details)
  }
  get problems(): Problem[] {
    const d = this.details as { problems?: Problem[] } | null
    return Array.isArray(d?.problems) ? d!.problems : []
  }
}

function hintOf(code: string, details: unknown): string {
  const d = (details ?? {}) as { problems?: Problem[]; violations?: { pointer: string; message: string }[]; hint?: string; reason?: string }
  if (typeof d.hint === 'string') return d.hint
  if (Array.isArray(d.problems) && d.problems.length)
    return d.problems.slice(0, 3).map((p) => `${p.pointer || '/'}: ${p.hint || p.message}`).join(' · ')
  if (Array.isArray(d.violations) && d.violations.length)
    return d.violations.slice(0, 3).map((v) => `${v.pointer || '/'}: ${v.message}`).join(' · ')
  if (typeof d.reason === 'string') return d.reason
  if (code === 'network') return 'Is `wf dev` running? Check the terminal that started it.'
  return ''
}

const TOKEN_KEY = 'wf.token'
export function token(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY)
  } catch {
    return null
  }
}
export function setToken(t: string | null) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t)
  else sessionStorage.removeItem(TOKEN_KEY)
}

/** Set by the app: asks the user for a token (null = cancelled). */
let askToken: ((reason: string) => Promise<string | null>) | null = null
export function onUnauthorized(f: (reason: string) => Promise<string | null>) {
  askToken = f
}

export function authHeaders(): Record<string, string> {
  const t = token()
  return t ? { Authorization: `Bearer ${t}` } : {}
}

export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  for (;;) {
    let res: Response
    try {
      res = await fetch(path, {
        method,
        headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), Accept: 'application/json', ...authHeaders() },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      })
    } catch (e) {
      throw new ApiError(0, 'network', `Cannot reach the API (${(e as Error).message})`, null)
    }
    const text = await res.text()
    let json: unknown = null
    if (text) {
      try {
        json = JSON.parse(text)
      } catch {
        json = null
      }
    }
    if (res.status === 401 && askToken) {
      const err = (json as { error?: { message?: string } })?.error
      const t = await askToken(err?.message ?? 'This API needs a bearer token.')
      if (t) {
        setToken(t)
        continue
      }
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string; details?: unknown } })?.error
      throw new ApiError(res.status, err?.code ?? `http_${res.status}`, err?.message ?? `${res.status} ${res.statusText}`, err?.details ?? null)
    }
    return json as T
  }
}

// ---- shapes of the answers the console reads

export interface Summary {
  id: string
  name: string
  active: boolean
  activeVersion: number | null
  latestVersion: number
  webhookUrl: string | null
  hasWebhookSecret: boolean
  source: string | null
  updatedAt: string
}
export interface Validation {
  valid: boolean
  problems: Problem[]
}
export interface WorkflowAnswer {
  workflow: Summary
  draft: Workflow
  validation: Validation | null
}
export type ExecStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'cancelled'
export type StepStatusName = 'running' | 'succeeded' | 'failed' | 'skipped' | string
export interface StepError {
  code: string
  message: string
  retryable?: boolean
  details?: unknown
}
/** What a run records, of a step as of a whole execution. */
interface RunRecord {
  input: unknown
  output: unknown
  error?: StepError | null
  startedAt: string
  finishedAt?: string | null
  durationMs?: number | null
}
export interface StepRecord extends RunRecord {
  path: string
  type: string
  status: StepStatusName
  attempts: number
  next?: string
}
export interface ExecutionRecord extends RunRecord {
  id: string
  workflowId: string
  version: number
  status: ExecStatus
  trigger: { type: string; [k: string]: unknown }
  deadlineAt: string
  rerunOf?: string
}
export interface ExecutionView extends ExecutionRecord {
  steps: StepRecord[]
  /** Set when `steps` is the first page: `GET /executions/{id}/steps?cursor=` has the rest. */
  stepsCursor?: string | null
}

/** `v` with the step records of the pages after it (`stepsCursor`), up to `max` records. */
export async function withAllSteps(v: ExecutionView, max = 50_000): Promise<ExecutionView> {
  let steps = v.steps
  let cursor = v.stepsCursor ?? null
  while (cursor && steps.length < max) {
    const q = new URLSearchParams({ limit: '1000', cursor })
    const page = await api<Page<StepRecord>>('GET', `/executions/${encodeURIComponent(v.id)}/steps?${q}`)
    steps = steps.concat(page.items)
    cursor = page.nextCursor
  }
  return { ...v, steps, stepsCursor: cursor }
}
export interface Page<T> {
  items: T[]
  nextCursor: string | null
}
/** An event a workflow subscribes to that started nothing (`GET /workflows/{id}/rejected-events`). */
export interface EventRejection {
  workflowId: string
  eventId: string
  eventType: string
  source: string
  eventTime: string
  reason: 'filter' | 'input' | 'start' | 'depth' | 'revisit'
  message: string
  rejectedAt: string
}
export interface ActionSpec {
  name: string
  description: string
  paramsSchema: { properties?: Record<string, { type?: string | string[]; enum?: string[]; description?: string; default?: unknown }>; required?: string[] }
}
export interface CronAnswer {
  input?: string
  cron: string
  eventbridge: string
  next: string[]
  source: string
  explanation?: string
}
export interface ChatReply {
  workflowId: string
  changed: boolean
  draft: Workflow
  diff: StepDiff
  validation: Validation
  explanation: string
}
export interface ChatTurn {
  at: string
  message: string
  explanation: string
  applied: boolean
  diff?: StepDiff
  problems?: number
}

export const TERMINAL: ExecStatus[] = ['succeeded', 'failed', 'timed_out', 'cancelled']

let actionsCache: Promise<ActionSpec[]> | null = null
export function actions(): Promise<ActionSpec[]> {
  actionsCache ??= api<ActionSpec[]>('GET', '/actions').catch((e) => {
    actionsCache = null
    throw e
  })
  return actionsCache
}

/**
 * Follow an execution live: Server-Sent Events from `GET /executions/{id}/events` (read with
 * fetch, so a bearer token can be sent), falling back to polling `GET /executions/{id}` every
 * 500 ms when the stream is unavailable (AWS Lambda function URLs buffer responses: 501).
 * Returns a stop function.
 */
export function follow(
  id: string,
  on: { step?: (s: StepRecord) => void; execution?: (e: ExecutionRecord) => void; end?: (v: ExecutionView) => void; mode?: (m: 'sse' | 'poll') => void },
): () => void {
  let stopped = false
  const ctrl = new AbortController()
  const poll = async () => {
    on.mode?.('poll')
    const seen = new Map<string, string>()
    let status = ''
    while (!stopped) {
      try {
        const v = await api<ExecutionView>('GET', `/executions/${encodeURIComponent(id)}`)
        if (v.status !== status) {
          status = v.status
          on.execution?.(v)
        }
        for (const s of v.steps) {
          const key = JSON.stringify(s)
          if (seen.get(s.path) !== key) {
            seen.set(s.path, key)
            on.step?.(s)
          }
        }
        if (TERMINAL.includes(v.status)) {
          on.end?.(v)
          return
        }
      } catch {
        /* keep polling */
      }
      await new Promise((r) => setTimeout(r, 500))
    }
  }
  const sse = async () => {
    let res: Response
    try {
      res = await fetch(`/executions/${encodeURIComponent(id)}/events`, { headers: { Accept: 'text/event-stream', ...authHeaders() }, signal: ctrl.signal })
    } catch {
      if (!stopped) void poll()
      return
    }
    if (!res.ok || !res.body) {
      if (!stopped) void poll()
      return
    }
    on.mode?.('sse')
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
    let buf = ''
    let ended = false
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buf += value
        let i: number
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i)
          buf = buf.slice(i + 2)
          let name = 'message'
          let data = ''
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) name = line.slice(6).trim()
            else if (line.startsWith('data:')) data += line.slice(5).trimStart()
          }
          if (!data) continue
          const parsed = JSON.parse(data)
          if (name === 'step') on.step?.(parsed)
          else if (name === 'execution') on.execution?.(parsed)
          else if (name === 'end') {
            ended = true
            on.end?.(parsed)
          }
        }
      }
    } catch {
      /* aborted or broken: fall back below */
    }
    if (!ended && !stopped) void poll()
  }
  void sse()
  return () => {
    stopped = true
    ctrl.abort()
  }
}
