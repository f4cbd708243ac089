// A series as the viewer shows it: its WADO-RS metadata (DICOM JSON, UTF-8 whatever the stored
// charset) made into one image ID per frame, in instance order, with what the overlay says.

import { api } from '../api/client'
import { serverUrl } from '../base'

/** One attribute of DICOM JSON (PS3.18 F.2). */
interface Attribute {
  vr: string
  Value?: unknown[]
  BulkDataURI?: string
  InlineBinary?: string
}
export type Instance = Record<string, Attribute>

export interface PersonName {
  Alphabetic?: string
  Ideographic?: string
  Phonetic?: string
}

export interface Frame {
  imageId: string
  instanceNumber: number | null
  /** 1-based frame of a multi-frame object; null for single-frame ones. */
  frame: number | null
  frames: number
}

export interface Stack {
  frames: Frame[]
  /** What the overlay shows, from the series' first instance. */
  patientName: PersonName | null
  patientId: string
  studyDate: string
  studyDescription: string
  seriesNumber: string
  seriesDescription: string
  modality: string
  /** The instances as the server described them (the image loader needs them). */
  instances: { imageIds: string[]; metadata: Instance }[]
}

function value(instance: Instance, tag: string): unknown {
  return instance[tag]?.Value?.[0]
}

function text(instance: Instance, tag: string): string {
  const found = value(instance, tag)
  return found === undefined || found === null ? '' : String(found)
}

function number(instance: Instance, tag: string): number | null {
  const found = Number(value(instance, tag))
  return value(instance, tag) === undefined || !Number.isFinite(found) ? null : found
}

/** The WADO-RS root as an absolute URL (the image loader asks for it with XHR). */
export function wadoRoot(): string {
  return new URL(serverUrl('/dicomweb'), window.location.href).href
}

/** The series' instances, one image ID per frame, sorted by instance number. */
export async function loadStack(study: string, series: string): Promise<Stack> {
  const path = `/dicomweb/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}/metadata`
  const found = await api.get<Instance[]>(path)
  const withPixels = found.filter((instance) => instance['7FE00010'] || instance['7FE00008'])
  withPixels.sort(
    (a, b) =>
      (number(a, '00200013') ?? Infinity) - (number(b, '00200013') ?? Infinity) ||
      text(a, '00080018').localeCompare(text(b, '00080018')),
  )
  const root = wadoRoot()
  const frames: Frame[] = []
  const instances: Stack['instances'] = []
  for (const instance of withPixels) {
    const count = Math.max(1, number(instance, '00280008') ?? 1)
    const base =
      `wadors:${root}/studies/${text(instance, '0020000D') || study}` +
      `/series/${text(instance, '0020000E') || series}/instances/${text(instance, '00080018')}/frames/`
    const imageIds: string[] = []
    for (let frame = 1; frame <= count; frame++) {
      const imageId = base + frame
      imageIds.push(imageId)
      frames.push({
        imageId,
        instanceNumber: number(instance, '00200013'),
        frame: count > 1 ? frame : null,
        frames: count,
      })
    }
    instances.push({ imageIds, metadata: instance })
  }
  const first = withPixels[0] ?? found[0] ?? {}
  return {
    frames,
    patientName: (value(first, '00100010') as PersonName | undefined) ?? null,
    patientId: text(first, '00100020'),
    studyDate: text(first, '00080020'),
    studyDescription: text(first, '00081030'),
    seriesNumber: text(first, '00200011'),
    seriesDescription: text(first, '0008103E'),
    modality: text(first, '00080060'),
    instances,
  }
}

const IDEOGRAPHS = /[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff]/

function groupText(group: string): string {
  const parts = group.split('^').filter(Boolean)
  // Chinese, Japanese and Korean names read without spaces between family and given name.
  return parts.join(parts.every((part) => IDEOGRAPHS.test(part)) ? '' : ' ')
}

/** A person name for people to read: the ideographic group (Chinese characters) first when
 * there is one, the alphabetic one beside it; '^' between components shown as a space. */
export function personName(name: PersonName | null): string {
  if (!name) return ''
  const ideographic = groupText(name.Ideographic ?? '')
  const alphabetic = groupText(name.Alphabetic ?? '')
  if (ideographic && alphabetic) return `${ideographic} (${alphabetic})`
  return ideographic || alphabetic || groupText(name.Phonetic ?? '')
}

/** CT windows (width, centre) in Hounsfield units. */
export const CT_PRESETS = {
  softTissue: { width: 400, center: 40 },
  lung: { width: 1500, center: -600 },
  bone: { width: 2000, center: 300 },
  brain: { width: 80, center: 40 },
} as const
export type CtPreset = keyof typeof CT_PRESETS
