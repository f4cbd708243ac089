// Who is signed in, as GET /api/auth/me tells; shared by the router guard and the layout.
import { reactive } from 'vue'
import { ApiError, request } from './api/client'

export type Role = 'admin' | 'operator' | 'viewer'

export interface Me {
  username: string
  role: Role
  must_change_password: boolean
}

export const session = reactive<{ me: Me | null; checked: boolean }>({ me: null, checked: false })

/** Ask the server once per page load (and after sign-in / sign-out). */
export async function whoAmI(force = false): Promise<Me | null> {
  if (session.checked && !force) return session.me
  try {
    session.me = await request<Me>('GET', '/api/auth/me', { quiet401: true })
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error
    session.me = null
  }
  session.checked = true
  return session.me
}

export async function signIn(username: string, password: string): Promise<Me> {
  const me = await request<Me>('POST', '/api/auth/login', {
    body: { username, password },
    quiet401: true,
  })
  session.me = me
  session.checked = true
  return me
}

export async function signOut(): Promise<void> {
  try {
    await request<void>('POST', '/api/auth/logout', { quiet401: true })
  } finally {
    session.me = null
    session.checked = true
  }
}

export async function changePassword(current: string, next: string): Promise<void> {
  await request<void>('POST', '/api/auth/password', {
    body: { current_password: current, new_password: next },
  })
  if (session.me) session.me = { ...session.me, must_change_password: false }
}

/** Admin: everything; operator: all but settings, users, audit; viewer: read only. Pages and
 * actions a role cannot use are hidden (the server refuses them anyway). */
export function may(action: 'change' | 'administer'): boolean {
  const role = session.me?.role
  if (action === 'administer') return role === 'admin'
  return role === 'admin' || role === 'operator'
}
