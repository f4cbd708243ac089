import { copyFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, URL } from 'node:url'
import { defineConfig, type Plugin } from 'vite'
import vue from '@vitejs/plugin-vue'

// Swagger UI's files (npm swagger-ui-dist) beside the console, so that the server's /docs
// works on a network without the internet (FastAPI's default page loads them from a CDN).
function swaggerUi(): Plugin {
  const files = ['swagger-ui-bundle.js', 'swagger-ui.css', 'favicon-32x32.png']
  return {
    name: 'openpacs-swagger-ui',
    apply: 'build',
    writeBundle(options) {
      const from = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'))
      const to = join(options.dir ?? '', 'swagger')
      mkdirSync(to, { recursive: true })
      for (const name of files) copyFileSync(join(from, name), join(to, name))
    },
  }
}

// The build lands where FastAPI serves the console from (git-ignored, rebuilt by make).
// `npm run dev` serves the sources with hot reload and hands server paths to `openpacs serve`.
const server = process.env.OPENPACS_URL ?? 'http://127.0.0.1:5000'
const serverPaths = ['/api', '/dicomweb', '/wado', '/ohif', '/docs', '/openapi.json', '/health']

export default defineConfig({
  plugins: [vue(), swaggerUi()],
  // The viewer's image loader (Cornerstone3D) decodes frames in a module web worker with
  // WebAssembly codecs; Vite finds the worker and the .wasm files through their
  // `new URL(..., import.meta.url)` and emits them as hashed assets beside the chunks.
  worker: { format: 'es' },
  optimizeDeps: {
    exclude: ['@cornerstonejs/dicom-image-loader'],
    include: ['dicom-parser'],
  },
  // vue-i18n's compile-time flags: Composition API only, no devtools hooks in the build.
  define: {
    __VUE_I18N_FULL_INSTALL__: true,
    __VUE_I18N_LEGACY_API__: false,
    __INTLIFY_PROD_DEVTOOLS__: false,
  },
  // Relative: index.html's <base href> (written by the server) says where the console lives.
  base: './',
  resolve: {
    alias: { '@': fileURLToPath(new URL('./src', import.meta.url)) },
  },
  build: {
    outDir: fileURLToPath(new URL('../src/openpacs/web/static/console', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    // Element Plus is one large chunk, the viewer's (Cornerstone3D with vtk.js, loaded only on
    // its route) another; both are cached for good (hashed names), so no warning.
    chunkSizeWarningLimit: 4000,
  },
  server: {
    proxy: Object.fromEntries(serverPaths.map((path) => [path, server])),
  },
})
