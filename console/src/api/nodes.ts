// /api/nodes: the registry of remote DICOM nodes, C-ECHO and C-FIND on one (web/api/nodes.py).
import { api } from './client'

export const NODE_USES = ['store_target', 'qr_source', 'move_destination', 'printer'] as const
export type NodeUse = (typeof NODE_USES)[number]
export const PERMISSIONS = ['echo', 'store', 'find', 'move', 'get'] as const
export type Permission = (typeof PERMISSIONS)[number]

export interface NodeSpec {
  name: string
  ae_title: string
  host: string
  port: number
  tls: boolean
  description: string
  uses: NodeUse[]
  permissions: Permission[]
}

export interface Node extends NodeSpec {
  created_at: string
  updated_at: string
}

export interface Echo {
  node: string
  ae_title: string
  host: string
  port: number
  status: number
  round_trip_ms: number
}

/** One answer of a C-FIND as DICOM JSON (PS3.18 F.2): tag (GGGGEEEE) → {vr, Value}. */
export type DicomJson = Record<string, { vr: string; Value?: unknown[] } | undefined>

export interface FindAnswers {
  node: string
  level: string
  answers: DicomJson[]
}

export type Level = 'STUDY' | 'SERIES'

const path = (name: string) => `/api/nodes/${encodeURIComponent(name)}`

export function listNodes(): Promise<Node[]> {
  return api.get<Node[]>('/api/nodes')
}

export function echoNode(name: string): Promise<Echo> {
  return api.post<Echo>(`${path(name)}/echo`)
}

/** C-FIND on the node; `keys`: keyword → value to match ('' to have it returned). */
export function findOnNode(name: string, level: Level, keys: Record<string, string>): Promise<FindAnswers> {
  return api.post<FindAnswers>(`${path(name)}/find`, { level, keys })
}

export function addNode(spec: NodeSpec): Promise<Node> {
  return api.post<Node>('/api/nodes', spec)
}

export function replaceNode(name: string, spec: NodeSpec): Promise<Node> {
  return api.put<Node>(path(name), spec)
}

export function deleteNode(name: string): Promise<void> {
  return api.delete<void>(path(name))
}

/** An attribute's value as text: several values joined by '\\', a person name as its groups
 * joined by '=' (as DICOM writes them). */
export function textOf(answer: DicomJson, tag: string): string {
  const values = answer[tag]?.Value ?? []
  return values
    .map((value) => {
      if (value && typeof value === 'object') {
        const name = value as { Alphabetic?: string; Ideographic?: string; Phonetic?: string }
        const groups = [name.Alphabetic ?? '', name.Ideographic ?? '', name.Phonetic ?? '']
        while (groups.length && !groups[groups.length - 1]) groups.pop()
        return groups.join('=')
      }
      return String(value)
    })
    .join('\\')
}
