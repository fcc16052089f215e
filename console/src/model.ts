// The workflow model as the console sees it: pure functions (no React, no fetch) for the graph
// <-> workflow JSON conversion, JSON pointer -> node mapping, edits, layout and diffs. Tested by
// model.test.ts.

export type StepType = 'start' | 'action' | 'llm' | 'condition' | 'loop' | 'output'
export const STEP_TYPES: StepType[] = ['start', 'action', 'llm', 'condition', 'loop', 'output']

export interface Position {
  x: number
  y: number
}
export interface Branch {
  if?: string
  next?: string | null
  [k: string]: unknown
}
export interface Step {
  id: string
  type: StepType
  next?: string | null
  onError?: string | null
  else?: string | null
  branches?: Branch[]
  steps?: Step[]
  position?: Position | null
  [k: string]: unknown
}
export interface Workflow {
  id: string
  name?: string
  description?: string
  config?: Record<string, unknown>
  steps: Step[]
  [k: string]: unknown
}
export interface Problem {
  pointer: string
  message: string
  hint?: string
  code?: string
}

/** Edge handles a step offers, by type. `b<i>` is branch i of a condition. */
export type Handle = 'next' | 'onError' | 'else' | `b${number}`

export const COLORS: Record<StepType, string> = {
  start: '#1d4ed8', // blue
  action: '#c2410c', // orange
  llm: '#7e22ce', // purple
  condition: '#b45309', // amber
  loop: '#0e7490', // cyan
  output: '#15803d', // green
}

export const TYPE_LABEL: Record<StepType, string> = {
  start: 'Start',
  action: 'Action',
  llm: 'LLM',
  condition: 'Condition',
  loop: 'Loop',
  output: 'Output',
}

// ---------------------------------------------------------------------------------------------
// Paths. A node is named by its scope path: `stepId` at the top level, `loopId/stepId` inside a
// loop body (ids are unique in a valid workflow, loop bodies included). Execution records name
// iterations `each[3]/price`: the node is `each/price`.

export function recordPathToNode(path: string): string {
  return path.replace(/\[\d+\]/g, '')
}

export function scopeOf(path: string): string {
  const i = path.lastIndexOf('/')
  return i < 0 ? '' : path.slice(0, i)
}

export function join(scope: string, id: string): string {
  return scope ? `${scope}/${id}` : id
}

function stepsOf(wf: Workflow): Step[] {
  return Array.isArray(wf?.steps) ? wf.steps : []
}

/** The steps of a scope ('' = top level, 'loop' or 'outer/inner' = a loop body). */
export function scopeSteps(wf: Workflow, scope: string): Step[] | null {
  let steps = stepsOf(wf)
  if (!scope) return steps
  for (const id of scope.split('/')) {
    const loop = steps.find((s) => s?.id === id)
    if (!loop || !Array.isArray(loop.steps)) return null
    steps = loop.steps
  }
  return steps
}

export function findStep(wf: Workflow, path: string): Step | null {
  const steps = scopeSteps(wf, scopeOf(path))
  const id = path.slice(path.lastIndexOf('/') + 1)
  return steps?.find((s) => s?.id === id) ?? null
}

/** Every step with its path, depth first (a loop before its body). */
export function allSteps(wf: Workflow): { path: string; step: Step }[] {
  const out: { path: string; step: Step }[] = []
  const walk = (steps: Step[], scope: string) => {
    for (const s of steps) {
      if (!s || typeof s !== 'object') continue
      const path = join(scope, String(s.id))
      out.push({ path, step: s })
      if (s.type === 'loop' && Array.isArray(s.steps)) walk(s.steps, path)
    }
  }
  walk(stepsOf(wf), '')
  return out
}

// ---------------------------------------------------------------------------------------------
// JSON pointers of validation problems -> the node (and the field inside it) they name.

export function parsePointer(pointer: string): string[] {
  if (!pointer) return []
  return pointer
    .replace(/^\//, '')
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
}

export interface PointerTarget {
  /** The node path, or null for a workflow-level problem (`/config/...`, `/name`, ``). */
  node: string | null
  /** What is left of the pointer inside the step: `/next`, `/params/url`, `` for the step. */
  field: string
}

export function pointerToNode(wf: Workflow, pointer: string): PointerTarget {
  const tokens = parsePointer(pointer)
  let steps: Step[] = stepsOf(wf)
  let scope = ''
  let node: string | null = null
  let i = 0
  while (i + 1 < tokens.length && tokens[i] === 'steps' && /^\d+$/.test(tokens[i + 1])) {
    const step = steps[Number(tokens[i + 1])]
    if (!step || typeof step !== 'object') break
    node = join(scope, String(step.id))
    i += 2
    if (tokens[i] === 'steps' && step.type === 'loop' && Array.isArray(step.steps) && /^\d+$/.test(tokens[i + 1] ?? '')) {
      scope = node
      steps = step.steps
      continue
    }
    break
  }
  if (node === null) return { node: null, field: pointer }
  const rest = tokens.slice(i).map((t) => t.replace(/~/g, '~0').replace(/\//g, '~1'))
  return { node, field: rest.length ? `/${rest.join('/')}` : '' }
}

/** Problems grouped by node path; workflow-level ones under ''. */
export function problemsByNode(wf: Workflow, problems: Problem[]): Map<string, Problem[]> {
  const out = new Map<string, Problem[]>()
  for (const p of problems ?? []) {
    const { node } = pointerToNode(wf, p.pointer)
    const key = node ?? ''
    out.set(key, [...(out.get(key) ?? []), p])
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Graph (React Flow's shape, without depending on it here).

export interface GraphNode {
  id: string
  type: 'step' | 'loop'
  position: Position
  parentId?: string
  extent?: 'parent'
  draggable?: boolean
  style?: Record<string, number | string>
  data: { path: string; step: Step; autoPosition: boolean; width: number; height: number }
}
export interface GraphEdge {
  id: string
  source: string
  target: string
  sourceHandle: Handle
  label?: string
  className?: string
  style?: Record<string, string | number>
  type?: string
}

export const NODE_W = 200
export const NODE_H = 64
const GAP_X = 48
const GAP_Y = 72
const LOOP_PAD = 24
const LOOP_HEAD = 72

export function edgesOfStep(step: Step): { handle: Handle; target: string; label?: string }[] {
  const out: { handle: Handle; target: string; label?: string }[] = []
  if (!step || typeof step !== 'object') return out
  if (step.type === 'condition') {
    ;(Array.isArray(step.branches) ? step.branches : []).forEach((b, i) => {
      if (b && typeof b.next === 'string' && b.next) out.push({ handle: `b${i}`, target: b.next, label: branchLabel(b, i) })
    })
    if (typeof step.else === 'string' && step.else) out.push({ handle: 'else', target: step.else, label: 'else' })
  } else if (step.type !== 'output') {
    if (typeof step.next === 'string' && step.next) out.push({ handle: 'next', target: step.next })
  }
  if ((step.type === 'action' || step.type === 'llm' || step.type === 'loop') && typeof step.onError === 'string' && step.onError)
    out.push({ handle: 'onError', target: step.onError, label: 'on error' })
  return out
}

function branchLabel(b: Branch, i: number): string {
  const cond = typeof b.if === 'string' ? b.if.replace(/^\{\{\s*|\s*\}\}$/g, '') : ''
  const short = cond.length > 28 ? `${cond.slice(0, 27)}…` : cond
  return short ? `if ${short}` : `branch ${i + 1}`
}

/** Sizes of a scope's nodes (loops grow around their bodies), for layout. */
function sizeOf(step: Step, positions: Map<string, Position>, path: string): { w: number; h: number } {
  if (step.type !== 'loop' || !Array.isArray(step.steps) || step.steps.length === 0) {
    return step.type === 'loop' ? { w: NODE_W + 2 * LOOP_PAD, h: LOOP_HEAD + NODE_H + LOOP_PAD } : { w: NODE_W, h: NODE_H }
  }
  const inner = layoutScope(step.steps, path, positions)
  let maxX = NODE_W
  let maxY = NODE_H
  for (const s of step.steps) {
    const p = inner.get(join(path, String(s.id)))
    const sz = sizeOf(s, positions, join(path, String(s.id)))
    if (p) {
      maxX = Math.max(maxX, p.x + sz.w)
      maxY = Math.max(maxY, p.y + sz.h)
    }
  }
  return { w: maxX + LOOP_PAD, h: maxY + LOOP_PAD }
}

/**
 * Positions of one scope's steps: a step's own `position` when set, else a layered layout
 * (rank = longest distance from the entry along edges; columns by order in the rank).
 * Positions of loop-body steps are relative to the loop.
 */
function layoutScope(steps: Step[], scope: string, out: Map<string, Position>): Map<string, Position> {
  const valid = steps.filter((s) => s && typeof s === 'object' && typeof s.id === 'string')
  const ids = new Set(valid.map((s) => s.id))
  const rank = new Map<string, number>()
  const entry = scope ? valid[0]?.id : (valid.find((s) => s.type === 'start') ?? valid[0])?.id
  // Longest-path ranks over the (acyclic in valid drafts) graph; bounded for invalid cycles.
  if (entry) rank.set(entry, 0)
  for (let round = 0; round < valid.length; round++) {
    let changed = false
    for (const s of valid) {
      const r = rank.get(s.id)
      if (r === undefined) continue
      for (const e of edgesOfStep(s)) {
        if (!ids.has(e.target)) continue
        if ((rank.get(e.target) ?? -1) < r + 1 && r + 1 <= valid.length) {
          rank.set(e.target, r + 1)
          changed = true
        }
      }
    }
    if (!changed) break
  }
  let maxRank = Math.max(-1, ...rank.values())
  for (const s of valid) if (!rank.has(s.id)) rank.set(s.id, ++maxRank)
  const layers: Step[][] = []
  for (const s of valid) (layers[rank.get(s.id)!] ??= []).push(s)
  const base = scope ? { x: LOOP_PAD, y: LOOP_HEAD } : { x: 0, y: 0 }
  let y = base.y
  const result = new Map<string, Position>()
  for (const layer of layers) {
    if (!layer) continue
    let x = base.x
    let h = 0
    for (const s of layer) {
      const path = join(scope, s.id)
      const sz = sizeOf(s, out, path)
      const own = s.position
      const p = own && typeof own.x === 'number' && typeof own.y === 'number' ? { x: own.x, y: own.y } : { x, y }
      result.set(path, p)
      out.set(path, p)
      x += sz.w + GAP_X
      h = Math.max(h, sz.h)
    }
    y += h + GAP_Y
  }
  return result
}

/** The graph of a workflow: one node per step (loop bodies nested in their loop), one edge per link. */
export function toGraph(wf: Workflow, opts: { readOnly?: boolean } = {}): { nodes: GraphNode[]; edges: GraphEdge[] } {
  const positions = new Map<string, Position>()
  const nodes: GraphNode[] = []
  const edges: GraphEdge[] = []
  const seen = new Set<string>()
  const walk = (steps: Step[], scope: string) => {
    layoutScope(steps, scope, positions)
    for (const s of steps) {
      if (!s || typeof s !== 'object' || typeof s.id !== 'string') continue
      let path = join(scope, s.id)
      if (seen.has(path)) path = `${path}#dup${nodes.length}` // an invalid draft: keep both visible
      seen.add(path)
      const size = sizeOf(s, positions, path)
      const node: GraphNode = {
        id: path,
        type: s.type === 'loop' ? 'loop' : 'step',
        position: positions.get(path) ?? { x: 0, y: 0 },
        data: { path, step: s, autoPosition: !s.position, width: size.w, height: size.h },
        draggable: !opts.readOnly,
      }
      if (s.type === 'loop') node.style = { width: size.w, height: size.h }
      if (scope) {
        node.parentId = scope
        node.extent = 'parent'
      }
      nodes.push(node)
      for (const e of edgesOfStep(s)) {
        const error = e.handle === 'onError'
        edges.push({
          id: `${path}:${e.handle}`,
          source: path,
          sourceHandle: e.handle,
          target: join(scope, e.target),
          label: e.label,
          className: error ? 'edge-error' : e.handle === 'else' ? 'edge-else' : undefined,
          style: error ? { stroke: '#b91c1c', strokeDasharray: '6 4' } : undefined,
        })
      }
      if (s.type === 'loop' && Array.isArray(s.steps)) walk(s.steps, path)
    }
  }
  walk(stepsOf(wf), '')
  // Edges whose target does not exist are not drawn (the problem shows on the source node).
  const ids = new Set(nodes.map((n) => n.id))
  return { nodes, edges: edges.filter((e) => ids.has(e.target)) }
}

/**
 * The workflow a graph describes: each node's step (its data) with its edge fields rebuilt from
 * the edges, and `position` written for nodes placed by hand (autoPosition false). Steps keep
 * the order of `base`; nodes not in `base` are appended to their scope.
 */
export function fromGraph(base: Workflow, nodes: GraphNode[], edges: GraphEdge[]): Workflow {
  const byScope = new Map<string, GraphNode[]>()
  for (const n of nodes) {
    const scope = n.parentId ?? ''
    byScope.set(scope, [...(byScope.get(scope) ?? []), n])
  }
  const outEdges = new Map<string, GraphEdge[]>()
  for (const e of edges) outEdges.set(e.source, [...(outEdges.get(e.source) ?? []), e])
  const build = (scope: string): Step[] => {
    const list = byScope.get(scope) ?? []
    return list.map((n) => {
      let step: Step = { ...n.data.step }
      // Clear what edges express, then set it again from the edges.
      for (const k of ['next', 'else', 'onError'] as const) if (typeof step[k] === 'string') step = clearKey(step, k)
      if (Array.isArray(step.branches)) step.branches = step.branches.map((b) => (typeof b?.next === 'string' ? { ...b, next: undefined } : b))
      for (const e of outEdges.get(n.id) ?? []) {
        step = setEdgeField(step, e.sourceHandle, e.target.slice(e.target.lastIndexOf('/') + 1))
      }
      if (Array.isArray(step.branches)) step.branches = step.branches.map((b) => stripUndefined(b))
      if (!n.data.autoPosition) step.position = { x: Math.round(n.position.x), y: Math.round(n.position.y) }
      if (step.type === 'loop' && Array.isArray(n.data.step.steps)) step.steps = build(n.id)
      return stripUndefined(step)
    })
  }
  return { ...base, steps: build('') }
}

function clearKey(step: Step, k: string): Step {
  return { ...step, [k]: undefined }
}

function stripUndefined<T extends object>(o: T): T {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as T
}

function setEdgeField(step: Step, handle: Handle, target: string | null): Step {
  const s: Step = { ...step }
  if (handle === 'next' || handle === 'else' || handle === 'onError') {
    if (target) s[handle] = target
    else delete s[handle]
  } else {
    const i = Number(handle.slice(1))
    const branches = Array.isArray(s.branches) ? [...s.branches] : []
    while (branches.length <= i) branches.push({ if: '{{ true }}' })
    const b = { ...branches[i] }
    if (target) b.next = target
    else delete b.next
    branches[i] = b
    s.branches = branches
  }
  return s
}

// ---------------------------------------------------------------------------------------------
// Edits (each returns a new workflow; the editor keeps them for undo/redo).

function mapScope(wf: Workflow, scope: string, f: (steps: Step[]) => Step[]): Workflow {
  if (!scope) return { ...wf, steps: f(stepsOf(wf)) }
  const [head, ...rest] = scope.split('/')
  const restScope = rest.join('/')
  return {
    ...wf,
    steps: stepsOf(wf).map((s) =>
      s?.id === head && Array.isArray(s.steps)
        ? { ...s, steps: mapScope({ id: '', steps: s.steps }, restScope, f).steps }
        : s,
    ),
  }
}

export function updateStep(wf: Workflow, path: string, f: (s: Step) => Step): Workflow {
  const id = path.slice(path.lastIndexOf('/') + 1)
  return mapScope(wf, scopeOf(path), (steps) => steps.map((s) => (s?.id === id ? f(s) : s)))
}

/** Connect `source`'s handle to `target` (same scope only; returns null when not allowed). */
export function connect(wf: Workflow, source: string, handle: Handle, target: string | null): Workflow | null {
  if (target !== null && scopeOf(source) !== scopeOf(target)) return null
  if (target === source) return null
  const targetId = target === null ? null : target.slice(target.lastIndexOf('/') + 1)
  return updateStep(wf, source, (s) => setEdgeField(s, handle, targetId))
}

/** Remove a step and every edge that points at it. */
export function removeStep(wf: Workflow, path: string): Workflow {
  const id = path.slice(path.lastIndexOf('/') + 1)
  return mapScope(wf, scopeOf(path), (steps) =>
    steps.filter((s) => s?.id !== id).map((s) => unlink(s, id)),
  )
}

function unlink(s: Step, id: string): Step {
  const out: Step = { ...s }
  for (const k of ['next', 'else', 'onError'] as const) if (out[k] === id) delete out[k]
  if (Array.isArray(out.branches)) out.branches = out.branches.map((b) => (b?.next === id ? stripUndefined({ ...b, next: undefined }) : b))
  return out
}

/** Rename a step and the edges of its scope that name it. */
export function renameStep(wf: Workflow, path: string, newId: string): Workflow {
  const id = path.slice(path.lastIndexOf('/') + 1)
  const swap = (v: unknown) => (v === id ? newId : v)
  return mapScope(wf, scopeOf(path), (steps) =>
    steps.map((s) => {
      if (!s || typeof s !== 'object') return s
      const out: Step = { ...s, id: s.id === id ? newId : s.id }
      for (const k of ['next', 'else', 'onError'] as const) if (k in out) out[k] = swap(out[k]) as string
      if (Array.isArray(out.branches)) out.branches = out.branches.map((b) => (b && 'next' in b ? { ...b, next: swap(b.next) as string } : b))
      return out
    }),
  )
}

export function freeId(wf: Workflow, base: string): string {
  const taken = new Set(allSteps(wf).map((s) => s.step.id))
  const clean = base.replace(/[^A-Za-z0-9_]/g, '_').replace(/^([^A-Za-z_])/, '_$1') || 'step'
  if (!taken.has(clean)) return clean
  for (let i = 2; ; i++) if (!taken.has(`${clean}_${i}`)) return `${clean}_${i}`
}

/** A new step of a type, with the fields the format requires. */
export function newStep(wf: Workflow, type: StepType, action?: string): Step {
  const base = type === 'action' && action ? action.split('.').pop()! : type
  const id = freeId(wf, base)
  switch (type) {
    case 'start':
      return { id, type, triggers: [{ type: 'manual' }] }
    case 'action':
      return { id, type, action: action ?? 'http.request', params: action === 'http.request' || !action ? { url: 'https://example.com' } : {} }
    case 'llm':
      return { id, type, model: 'gpt-4o-mini', prompt: 'Summarize: {{ input | tojson }}' }
    case 'condition':
      return { id, type, branches: [{ if: '{{ true }}' }] }
    case 'loop':
      return { id, type, items: '{{ input.items }}', steps: [] }
    case 'output':
      return { id, type, output: {} }
  }
}

export function addStep(wf: Workflow, scope: string, step: Step): Workflow {
  return mapScope(wf, scope, (steps) => [...steps, step])
}

// ---------------------------------------------------------------------------------------------
// Diffs (publish preview against the previous version; the AI chat's answer).

export interface StepDiff {
  addedSteps: string[]
  removedSteps: string[]
  changedSteps: { id: string; keys: string[] }[]
  changedConfig: string[]
  changedFields?: string[]
}

export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined && x !== null)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`
  }
  return JSON.stringify(v)
}

export function deepEqual(a: unknown, b: unknown): boolean {
  return stableJson(a) === stableJson(b)
}

/** Step-level diff from `before` to `after` (steps by id, loop bodies included). */
export function diffWorkflows(before: Workflow | null, after: Workflow): StepDiff {
  const flat = (wf: Workflow | null) => new Map(wf ? allSteps(wf).map(({ step }) => [step.id, step] as const) : [])
  const a = flat(before)
  const b = flat(after)
  const addedSteps = [...b.keys()].filter((id) => !a.has(id))
  const removedSteps = [...a.keys()].filter((id) => !b.has(id))
  const changedSteps: { id: string; keys: string[] }[] = []
  for (const [id, s] of b) {
    const old = a.get(id)
    if (!old) continue
    const keys = [...new Set([...Object.keys(old), ...Object.keys(s)])].filter(
      (k) => k !== 'steps' && !deepEqual(old[k], s[k]),
    )
    if (keys.length) changedSteps.push({ id, keys })
  }
  const ca = (before?.config ?? {}) as Record<string, unknown>
  const cb = (after.config ?? {}) as Record<string, unknown>
  const changedConfig = [...new Set([...Object.keys(ca), ...Object.keys(cb)])].filter(
    (k) => k !== 'active' && !deepEqual(ca[k], cb[k]),
  )
  const changedFields = ['name', 'description'].filter((k) => before && !deepEqual(before[k], after[k]))
  return { addedSteps, removedSteps, changedSteps, changedConfig, changedFields }
}

export type DiffMark = 'added' | 'removed' | 'changed'

/** How each step id shows on the canvas for a diff. */
export function diffMarks(diff: StepDiff | null | undefined): Map<string, DiffMark> {
  const out = new Map<string, DiffMark>()
  if (!diff) return out
  for (const id of diff.addedSteps ?? []) out.set(id, 'added')
  for (const id of diff.removedSteps ?? []) out.set(id, 'removed')
  for (const c of diff.changedSteps ?? []) out.set(c.id, 'changed')
  return out
}

export function diffIsEmpty(d: StepDiff): boolean {
  return !d.addedSteps.length && !d.removedSteps.length && !d.changedSteps.length && !d.changedConfig.length && !(d.changedFields ?? []).length
}

/**
 * The workflow to draw for a diff: `after`, plus the removed steps of `before` (so they can be
 * shown in red) appended to their scope.
 */
export function withRemoved(before: Workflow | null, after: Workflow, diff: StepDiff): Workflow {
  if (!before || !diff.removedSteps.length) return after
  let out = after
  const removed = new Set(diff.removedSteps)
  for (const { path, step } of allSteps(before)) {
    if (!removed.has(step.id)) continue
    const scope = scopeOf(path)
    if (scopeSteps(out, scope) === null) continue
    const { steps: _body, ...rest } = step
    out = addStep(out, scope, { ...rest, next: undefined, onError: undefined, else: undefined, branches: undefined } as Step)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Templates: what `{{ ` may be followed by at a step (completion).

export function templateSuggestions(wf: Workflow, path: string | null): string[] {
  const out: string[] = []
  const start = stepsOf(wf).find((s) => s?.type === 'start')
  const schema = start?.inputSchema as { properties?: Record<string, unknown> } | undefined
  out.push('input')
  for (const k of Object.keys(schema?.properties ?? {})) out.push(`input.${k}`)
  const vars = (wf.config?.variables ?? {}) as Record<string, unknown>
  if (vars && typeof vars === 'object') for (const k of Object.keys(vars)) out.push(`vars.${k}`)
  for (const { path: p, step } of allSteps(wf)) {
    if (p === path || step.type === 'start') continue
    out.push(`steps.${step.id}.output`, `steps.${step.id}.status`, `steps.${step.id}.error`)
  }
  if (path && scopeOf(path)) out.push('item', 'index')
  out.push('execution.id', 'secrets.')
  return out
}

/** A sample input from an inputSchema's required fields (the test panel's prefill). */
export function sampleInput(schema: unknown): unknown {
  const s = schema as { type?: string; required?: string[]; properties?: Record<string, { type?: string | string[]; enum?: unknown[]; default?: unknown }> } | undefined
  if (!s || typeof s !== 'object') return {}
  const out: Record<string, unknown> = {}
  for (const k of s.required ?? []) {
    const p = s.properties?.[k] ?? {}
    const t = Array.isArray(p.type) ? p.type[0] : p.type
    out[k] =
      p.default !== undefined ? p.default : p.enum?.length ? p.enum[0] : t === 'number' || t === 'integer' ? 0 : t === 'boolean' ? false : t === 'array' ? [] : t === 'object' ? {} : ''
  }
  return out
}
