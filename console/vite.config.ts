/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// Deterministic output (CI rebuilds it and compares with the committed console/dist): content
// hashes in asset names, no timestamps, no source maps.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    target: 'es2022',
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: Object.fromEntries(
      ['/workflows', '/executions', '/cron', '/actions', '/openapi.json', '/hooks', '/events'].map((p) => [
        p,
        process.env.WF_API ?? 'http://127.0.0.1:3000',
      ]),
    ),
  },
  test: { include: ['src/**/*.test.ts', 'src/**/*.test.tsx'] },
})
