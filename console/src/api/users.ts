// /api/users (accounts, admins only) and /api/audit (who did what; web/api/accounts.py).
import { api } from './client'
import type { Role } from '../session'
import type { Paged } from '../paging'

export const ROLES: Role[] = ['admin', 'operator', 'viewer']

export interface User {
  username: string
  role: Role
  disabled: boolean
  must_change_password: boolean
  created_at: string
  last_login_at: string | null
}

export interface NewUser {
  username: string
  password: string
  role: Role
  must_change_password: boolean
}

export interface UserChange {
  role?: Role
  /** A new password, to be changed at the next sign-in. */
  password?: string
  disabled?: boolean
}

export interface AuditEvent {
  id: number
  at: string
  username: string | null
  address: string | null
  action: string
  study_instance_uid: string | null
  series_instance_uid: string | null
  sop_instance_uid: string | null
  object: string | null
  detail: string | null
}

export interface AuditFilters {
  user?: string
  action?: string
  study?: string
  since?: string
  until?: string
}

export const AUDIT_ACTIONS = [
  'login', 'login-failed', 'locked-out', 'logout', 'password-changed', 'user-created',
  'user-changed', 'user-deleted', 'token-created', 'token-deleted', 'opened', 'downloaded',
  'uploaded', 'sent', 'retrieved', 'deleted', 'changed',
] as const

const path = (name: string) => `/api/users/${encodeURIComponent(name)}`

export function listUsers(): Promise<User[]> {
  return api.get<User[]>('/api/users')
}

export function addUser(user: NewUser): Promise<User> {
  return api.post<User>('/api/users', user)
}

export function changeUser(name: string, change: UserChange): Promise<User> {
  return api.put<User>(path(name), change)
}

export function deleteUser(name: string): Promise<void> {
  return api.delete<void>(path(name))
}

export function searchAudit(filters: AuditFilters, page: { offset: number; limit: number }): Promise<Paged<AuditEvent>> {
  return api.get<Paged<AuditEvent>>('/api/audit', { ...filters, ...page })
}
