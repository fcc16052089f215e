import { renderToStaticMarkup } from 'react-dom/server'
import { describe, expect, it } from 'vitest'
import { DiffView } from './Diff'

describe('diff rendering', () => {
  it('lists added, removed and changed steps with their colours, and config keys', () => {
    const html = renderToStaticMarkup(
      <DiffView diff={{ addedSteps: ['a'], removedSteps: ['r'], changedSteps: [{ id: 'c', keys: ['params', 'next'] }], changedConfig: ['timeoutMs'], changedFields: [] }} />,
    )
    expect(html).toContain('class="d-added"')
    expect(html).toContain('<code>a</code>')
    expect(html).toContain('class="d-removed"')
    expect(html).toContain('<code>r</code>')
    expect(html).toContain('class="d-changed"')
    expect(html).toContain('params, next')
    expect(html).toContain('config: timeoutMs')
  })
  it('says when nothing changed, and the first version', () => {
    const empty = { addedSteps: [], removedSteps: [], changedSteps: [], changedConfig: [], changedFields: [] }
    expect(renderToStaticMarkup(<DiffView diff={empty} />)).toContain('No change')
    expect(renderToStaticMarkup(<DiffView diff={{ ...empty, addedSteps: ['x', 'y'] }} first />)).toContain('First version: 2 step(s)')
  })
})
