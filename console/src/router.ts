import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import ConsoleLayout from './components/ConsoleLayout.vue'
import { whoAmI } from './session'
import { basePath } from './base'

declare module 'vue-router' {
  interface RouteMeta {
    /** Reachable without signing in. */
    public?: boolean
    /** Only administrators see it (settings, users). */
    admin?: boolean
    /** The navigation label's message key. */
    label?: string
  }
}

// Pages of the console (issue 8) in the order the navigation bar shows them.
export const PAGES: RouteRecordRaw[] = [
  {
    path: 'studies',
    name: 'studies',
    component: () => import('./views/StudiesPage.vue'),
    meta: { label: 'nav.studies' },
  },
  {
    path: 'worklist',
    name: 'worklist',
    component: () => import('./views/WorklistPage.vue'),
    meta: { label: 'nav.worklist' },
  },
  {
    path: 'query-retrieve',
    name: 'query-retrieve',
    component: () => import('./views/QueryRetrievePage.vue'),
    meta: { label: 'nav.queryRetrieve' },
  },
  {
    path: 'send',
    name: 'send',
    component: () => import('./views/SendPage.vue'),
    meta: { label: 'nav.send' },
  },
  {
    path: 'print',
    name: 'print',
    component: () => import('./views/PrintPage.vue'),
    meta: { label: 'nav.print' },
  },
  {
    path: 'logs',
    name: 'logs',
    component: () => import('./views/LogsPage.vue'),
    meta: { label: 'nav.logs' },
  },
  {
    path: 'settings',
    name: 'settings',
    component: () => import('./views/SettingsPage.vue'),
    meta: { label: 'nav.settings', admin: true },
  },
  {
    path: 'status',
    name: 'status',
    component: () => import('./views/StatusPage.vue'),
    meta: { label: 'nav.status' },
  },
]

const routes: RouteRecordRaw[] = [
  {
    path: '/sign-in',
    name: 'sign-in',
    component: () => import('./views/SignInPage.vue'),
    meta: { public: true },
  },
  {
    path: '/change-password',
    name: 'change-password',
    component: () => import('./views/ChangePasswordPage.vue'),
  },
  {
    path: '/',
    component: ConsoleLayout,
    children: [
      { path: '', redirect: { name: 'studies' } },
      ...PAGES,
      // The built-in viewer (Cornerstone3D, loaded only here), opened from a study or series.
      {
        path: 'viewer/:study/:series?',
        name: 'viewer',
        component: () => import('./views/ViewerPage.vue'),
      },
    ],
  },
  { path: '/:unknown(.*)*', redirect: { name: 'studies' } },
]

export const router = createRouter({ history: createWebHistory(basePath()), routes })

router.beforeEach(async (to) => {
  if (to.meta.public) return true
  let me
  try {
    me = await whoAmI()
  } catch {
    // The server could not say who we are (down, or no sign-in there): let the page try; its
    // own requests meet the 401 that sends us to the sign-in page if one is needed.
    return true
  }
  const next = to.fullPath
  if (me === null) return { name: 'sign-in', query: { next } }
  if (me.must_change_password && to.name !== 'change-password') {
    return { name: 'change-password', query: { next } }
  }
  if (to.meta.admin && me.role !== 'admin') return { name: 'studies' }
  return true
})

/** A `next` query parameter, if it is a path of this console (never another site). */
export function nextPath(value: unknown): string {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//')
    ? value
    : '/studies'
}
