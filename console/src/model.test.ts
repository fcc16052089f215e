import { readdirSync, readFileSync } from 'node:fs'
import { join as pjoin } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  connect,
  deepEqual,
  diffMarks,
  diffWorkflows,
  fromGraph,
  pointerToNode,
  problemsByNode,
  recordPathToNode,
  removeStep,
  renameStep,
  toGraph,
  withRemoved,
  type Workflow,
} from './model'

const dir = pjoin(__dirname, '../../workflows')
const examples: [string, Workflow][] = readdirSync(dir)
  .filter((f) => f.endsWith('.json') && f !== 'schema.json')
  .map((f) => [f, JSON.parse(readFileSync(pjoin(dir, f), 'utf8'))])

// The JSON blocks of the format guide are complete workflows too.
const guide = readFileSync(pjoin(dir, 'README.md'), 'utf8')
const guideExamples: [string, Workflow][] = [...guide.matchAll(/```json\n([\s\S]*?)```/g)].map((m, i) => [`README.md#${i}`, JSON.parse(m[1])])

describe('graph <-> workflow JSON', () => {
  it('has examples to check', () => {
    expect(examples.length).toBeGreaterThanOrEqual(5)
  })
  it.each([...examples, ...guideExamples])('%s round-trips through the graph', (_, wf) => {
    const g = toGraph(wf)
    const back = fromGraph(wf, g.nodes, g.edges)
    expect(deepEqual(back, wf)).toBe(true)
    // Every step is a node; every link an edge.
    const count = (steps: Workflow['steps']): number => steps.reduce((n, s) => n + 1 + (s.type === 'loop' ? count(s.steps ?? []) : 0), 0)
    expect(g.nodes.length).toBe(count(wf.steps))
  })
  it('keeps positions set by hand and nests loop bodies', () => {
    const wf = examples.find(([f]) => f === 'customer-checkup.json')![1]
    const g = toGraph(wf)
    const body = g.nodes.find((n) => n.id === 'each/account')!
    expect(body.parentId).toBe('each')
    const moved = g.nodes.map((n) => (n.id === 'each/account' ? { ...n, position: { x: 40, y: 90 }, data: { ...n.data, autoPosition: false } } : n))
    const back = fromGraph(wf, moved, g.edges)
    const loop = back.steps.find((s) => s.id === 'each')!
    expect(loop.steps![0].position).toEqual({ x: 40, y: 90 })
    const again = toGraph(back)
    expect(again.nodes.find((n) => n.id === 'each/account')!.position).toEqual({ x: 40, y: 90 })
  })
  it('draws onError dashed and branches labelled', () => {
    const wf = examples.find(([f]) => f === 'order-alert.json')![1]
    const g = toGraph(wf)
    const err = g.edges.find((e) => e.sourceHandle === 'onError')!
    expect(err.source).toBe('notify')
    expect(err.style?.strokeDasharray).toBeTruthy()
    expect(g.edges.find((e) => e.sourceHandle === 'b0')!.target).toBe('notify')
    expect(g.edges.find((e) => e.sourceHandle === 'else')!.target).toBe('ignored')
  })
  it('edits: connect, remove, rename', () => {
    const wf = examples.find(([f]) => f === 'order-alert.json')![1]
    const c = connect(wf, 'check', 'else', 'alerted')!
    expect(c.steps.find((s) => s.id === 'check')!.else).toBe('alerted')
    expect(connect(wf, 'check', 'b0', 'check')).toBeNull()
    const r = removeStep(wf, 'notify')
    expect(r.steps.find((s) => s.id === 'check')!.branches![0].next).toBeUndefined()
    const n = renameStep(wf, 'notify', 'tell')
    expect(n.steps.find((s) => s.id === 'check')!.branches![0].next).toBe('tell')
    expect(n.steps.find((s) => s.id === 'tell')).toBeTruthy()
  })
})

describe('pointer -> node', () => {
  const wf = examples.find(([f]) => f === 'customer-checkup.json')![1]
  it('maps top-level and nested pointers', () => {
    expect(pointerToNode(wf, '/steps/1/next')).toEqual({ node: 'customers', field: '/next' })
    expect(pointerToNode(wf, '/steps/2/steps/0/params/url')).toEqual({ node: 'each/account', field: '/params/url' })
    expect(pointerToNode(wf, '/steps/2/steps/1')).toEqual({ node: 'each/verdict', field: '' })
    expect(pointerToNode(wf, '/steps/2/items')).toEqual({ node: 'each', field: '/items' })
    expect(pointerToNode(wf, '/config/timeoutMs')).toEqual({ node: null, field: '/config/timeoutMs' })
    expect(pointerToNode(wf, '')).toEqual({ node: null, field: '' })
    expect(pointerToNode(wf, '/steps/99/next').node).toBeNull()
  })
  it('groups problems per node', () => {
    const m = problemsByNode(wf, [
      { pointer: '/steps/3/output', message: 'x' },
      { pointer: '/name', message: 'y' },
    ])
    expect(m.get('summary')!.length).toBe(1)
    expect(m.get('')!.length).toBe(1)
  })
  it('maps record paths of iterations to nodes', () => {
    expect(recordPathToNode('each[12]/account')).toBe('each/account')
    expect(recordPathToNode('outer[1]/inner[2]/x')).toBe('outer/inner/x')
  })
})

describe('diffs', () => {
  const before = examples.find(([f]) => f === 'order-alert.json')![1]
  it('finds added, removed and changed steps and config keys', () => {
    let after = removeStep(before, 'ignored')
    after = { ...after, config: { ...after.config, timeoutMs: 1 }, steps: [...after.steps.map((s) => (s.id === 'notify' ? { ...s, timeoutMs: 5 } : s)), { id: 'extra', type: 'output' as const }] }
    const d = diffWorkflows(before, after)
    expect(d.addedSteps).toEqual(['extra'])
    expect(d.removedSteps).toEqual(['ignored'])
    expect(d.changedSteps).toContainEqual({ id: 'notify', keys: ['timeoutMs'] })
    expect(d.changedSteps.find((c) => c.id === 'check')!.keys).toEqual(['else'])
    expect(d.changedConfig).toEqual(['timeoutMs'])
    const marks = diffMarks(d)
    expect(marks.get('extra')).toBe('added')
    expect(marks.get('ignored')).toBe('removed')
    expect(marks.get('notify')).toBe('changed')
    // Removed steps are drawn (in red) next to the new draft.
    const drawn = toGraph(withRemoved(before, after, d))
    expect(drawn.nodes.map((n) => n.id)).toContain('ignored')
  })
  it('ignores position-only null vs missing', () => {
    expect(diffWorkflows(before, JSON.parse(JSON.stringify(before))).changedSteps).toEqual([])
  })
})
