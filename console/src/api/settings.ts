// /api/settings: the configuration as openpacs.toml holds it, its JSON schema, and changes
// (web/api/settings.py; admins only).
import { api } from './client'

export type Values = Record<string, unknown>

export interface SettingsShown {
  /** The file changes are saved to (null: the server has none and refuses changes). */
  file: string | null
  /** Section → key → value (secrets shown as ********); arrays of tables as lists. */
  settings: Record<string, Values | Values[]>
  /** Dotted keys an OPENPACS_* environment variable sets (the file's value does not count). */
  overridden_by_environment: string[]
}

export interface SettingsChange {
  saved_to: string
  changed: string[]
  applied: string[]
  restart_required: string[]
  failed: { key: string; reason: string }[]
  overridden_by_environment: string[]
}

/** The part of JSON Schema the forms read. */
export interface SchemaNode {
  $ref?: string
  type?: string
  enum?: string[]
  items?: SchemaNode
  additionalProperties?: SchemaNode | boolean
  properties?: Record<string, SchemaNode>
  required?: string[]
  default?: unknown
  description?: string
  minimum?: number
  maximum?: number
  exclusiveMinimum?: number
  format?: string
}

export interface SettingsSchema extends SchemaNode {
  $defs: Record<string, SchemaNode>
}

export function getSettings(): Promise<SettingsShown> {
  return api.get<SettingsShown>('/api/settings')
}

export function getSchema(): Promise<SettingsSchema> {
  return api.get<SettingsSchema>('/api/settings/schema')
}

/** `{section: {key: value}}`: only the keys given change. */
export function changeSettings(change: Record<string, Values>): Promise<SettingsChange> {
  return api.put<SettingsChange>('/api/settings', change)
}

/** A `$ref` followed to its definition; anything else as it is. */
export function resolve(schema: SettingsSchema, node: SchemaNode): SchemaNode {
  const name = node.$ref?.split('/').pop()
  return name ? { ...schema.$defs[name], ...node, $ref: undefined } : node
}
