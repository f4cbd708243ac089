// Cornerstone3D, set up once for the built-in viewer. Only ViewerPage imports this module, so
// Cornerstone (and its codecs and workers) load with the viewer's route, never with the rest of
// the console.
//
// Rendering: WebGL when the browser has it (SwiftShader counts), else Cornerstone's CPU
// rendering, which core's init chooses by itself when no WebGL context can be made.
// Decoding: frames come from our WADO-RS as stored (`transfer-syntax=*`, no work for the
// server); the image loader decodes JPEG, JPEG-LS, JPEG 2000, HTJ2K, RLE and JPEG XL in web
// workers with WebAssembly codecs, which the build emits beside the chunks (vite.config.ts).
// An object whose frames the browser cannot decode (say JPEG 2000 Part 2) is asked for again
// as native pixels, which the server makes (see `askNative`).

import * as core from '@cornerstonejs/core'
import * as tools from '@cornerstonejs/tools'
import { init as initImageLoader, wadors } from '@cornerstonejs/dicom-image-loader'

export { core, tools }

/** Tools for the primary mouse button, in the toolbar's order. */
export const PRIMARY_TOOLS = {
  windowLevel: tools.WindowLevelTool.toolName,
  pan: tools.PanTool.toolName,
  zoom: tools.ZoomTool.toolName,
  length: tools.LengthTool.toolName,
  angle: tools.AngleTool.toolName,
  rectangle: tools.RectangleROITool.toolName,
  ellipse: tools.EllipticalROITool.toolName,
  probe: tools.ProbeTool.toolName,
} as const
export type PrimaryTool = keyof typeof PRIMARY_TOOLS

const TOOL_CLASSES = [
  tools.WindowLevelTool,
  tools.PanTool,
  tools.ZoomTool,
  tools.StackScrollTool,
  tools.LengthTool,
  tools.AngleTool,
  tools.RectangleROITool,
  tools.EllipticalROITool,
  tools.ProbeTool,
]

let ready: Promise<void> | undefined

const NATIVE = 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'
/** Instances (image IDs without their frame number) whose frames are asked for as native. */
const native = new Set<string>()

function instanceOf(imageId: string): string {
  return imageId.replace(/\/frames\/\d+$/, '')
}

/** After `imageId` failed to load or decode: whether asking for its object's frames as native
 * pixels is worth a try (not tried yet); if so, the next load of its frames does that. */
export function askNative(imageId: string): boolean {
  const instance = instanceOf(imageId)
  if (native.has(instance)) return false
  native.add(instance)
  if (core.cache.getImageLoadObject(imageId)) core.cache.removeImageLoadObject(imageId, { force: true })
  return true
}

/** Cornerstone's core, tools and image loader, initialised on first use. */
export function setUp(): Promise<void> {
  ready ??= (async () => {
    core.init()
    initImageLoader({
      maxWebWorkers: Math.max(1, Math.min(navigator.hardwareConcurrency || 1, 4) - 1),
      beforeSend: (_xhr: XMLHttpRequest, imageId: string) => ({
        // Our own header: a 401 then carries no Basic challenge (no browser password dialog).
        'X-Requested-With': 'openpacs-console',
        ...(native.has(instanceOf(imageId)) ? { Accept: NATIVE } : {}),
      }),
    })
    tools.init()
    for (const tool of TOOL_CLASSES) tools.addTool(tool)
  })()
  return ready
}

/** Whether images are drawn without WebGL (shown to the user: it is slower). */
export function cpuRendering(): boolean {
  return core.getShouldUseCPURendering()
}

/** The image loader's store of WADO-RS metadata, by image ID. */
export const wadorsMetadata = wadors.metaDataManager
/** An instance's DICOM JSON as the image loader types it. */
export type WadorsMetadata = Parameters<typeof wadorsMetadata.add>[1]

const { MouseBindings } = tools.Enums

/** A tool group for one viewport: the chosen primary tool, pan on the middle button, zoom on
 * the right, stack scroll on the wheel; measurements stay visible when another tool is chosen. */
export function makeToolGroup(id: string, renderingEngineId: string, viewportId: string) {
  tools.ToolGroupManager.destroyToolGroup(id)
  const group = tools.ToolGroupManager.createToolGroup(id)
  if (!group) throw new Error(`tool group ${id} exists`)
  for (const tool of TOOL_CLASSES) group.addTool(tool.toolName)
  group.addViewport(viewportId, renderingEngineId)
  group.setToolActive(tools.PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] })
  group.setToolActive(tools.ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] })
  group.setToolActive(tools.StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] })
  return group
}

export type ToolGroup = ReturnType<typeof makeToolGroup>

/** Make `name` the primary button's tool; the one before goes passive (its marks stay). */
export function choosePrimary(group: ToolGroup, name: PrimaryTool): void {
  const wanted = PRIMARY_TOOLS[name]
  for (const toolName of Object.values(PRIMARY_TOOLS)) {
    if (toolName === wanted) continue
    if (toolName === tools.PanTool.toolName) {
      group.setToolActive(toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] })
    } else if (toolName === tools.ZoomTool.toolName) {
      group.setToolActive(toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] })
    } else {
      group.setToolPassive(toolName)
    }
  }
  const bindings = [{ mouseButton: MouseBindings.Primary }]
  if (wanted === tools.PanTool.toolName) bindings.push({ mouseButton: MouseBindings.Auxiliary })
  if (wanted === tools.ZoomTool.toolName) bindings.push({ mouseButton: MouseBindings.Secondary })
  group.setToolActive(wanted, { bindings })
}
