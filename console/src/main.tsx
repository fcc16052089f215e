import { StrictMode, useEffect, useState } from 'react'
import { useRoute } from './nav'
import { createRoot } from 'react-dom/client'
import '@xyflow/react/dist/style.css'
import './styles.css'
import { onUnauthorized } from './api'
import { TokenPrompt } from './ui'
import { List } from './List'
import { Editor } from './Editor'
import { ExecutionPage } from './Executions'

function App() {
  const route = useRoute()
  const [ask, setAsk] = useState<{ reason: string; done: (t: string | null) => void } | null>(null)
  useEffect(() => {
    onUnauthorized((reason) => new Promise((resolve) => setAsk({ reason, done: (t) => (setAsk(null), resolve(t)) })))
  }, [])
  let page
  if (route[0] === 'w' && route[1]) page = <Editor key={route[1]} id={route[1]} tab={route[2] ?? 'canvas'} arg={route[3]} />
  else if (route[0] === 'x' && route[1]) page = <ExecutionPage key={route[1]} id={route[1]} />
  else page = <List />
  return (
    <>
      <header className="top">
        <a href="#/" className="brand">
          wf
        </a>
        <nav aria-label="Main">
          <a href="#/">Automations</a>
          <a href="/openapi.json">API</a>
        </nav>
      </header>
      <main>{page}</main>
      {ask && <TokenPrompt reason={ask.reason} done={ask.done} />}
    </>
  )
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
