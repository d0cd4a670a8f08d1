; MedKD Desktop: per-machine Windows installer (NSIS 3, Unicode).
;
; makensis /DVERSION=0.1.0 /DPAYLOAD_DIR=..\..\dist\medkd-desktop /DOUTFILE=..\..\dist\medkd-desktop-0.1.0-setup.exe medkd-desktop.nsi
;
; Installs the PyInstaller onedir bundle (PAYLOAD_DIR, built on Windows from packaging/medkd-desktop.spec)
; to "C:\Program Files\MedKD Desktop", with a Start-menu folder, an "Apps & features" entry and an
; uninstaller. Silent install for software deployment (SCCM, Intune, GPO):
;     medkd-desktop-0.1.0-setup.exe /S [/D=C:\Path\Without\Quotes]
; and silent removal: "C:\Program Files\MedKD Desktop\uninstall.exe" /S
; Nothing is written outside the install folder, the Start menu and the uninstall registry key: the
; app itself keeps settings, logs, user models and caches in each user's profile (platformdirs).
Unicode true
SetCompressor /SOLID lzma
SetCompressorDictSize 64
ManifestDPIAware true
RequestExecutionLevel admin

!ifndef VERSION
  !define VERSION "0.0.0"
!endif
!ifndef PAYLOAD_DIR
  !error "PAYLOAD_DIR must name the built dist\medkd-desktop folder (makensis /DPAYLOAD_DIR=...)"
!endif
!ifndef OUTFILE
  !define OUTFILE "medkd-desktop-${VERSION}-setup.exe"
!endif
!define APP "MedKD Desktop"
!define UNINST_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\MedKD Desktop"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "x64.nsh"

Name "${APP} ${VERSION}"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${APP}"
InstallDirRegKey HKLM "${UNINST_KEY}" "InstallLocation"
BrandingText "${APP} ${VERSION} - research use only, not a medical device"
!define MUI_ICON "..\icons\medkd-desktop.ico"
!define MUI_UNICON "..\icons\medkd-desktop.ico"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\medkd-desktop.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start ${APP}"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "${APP}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "${APP} installer"
VIAddVersionKey "LegalCopyright" "Apache-2.0; third-party components under their own licences"

Function .onInit
  ${IfNot} ${RunningX64}
    MessageBox MB_ICONSTOP|MB_OK "${APP} needs 64-bit Windows." /SD IDOK
    Abort
  ${EndIf}
  SetRegView 64
FunctionEnd

Function un.onInit
  SetRegView 64
FunctionEnd

Section "MedKD Desktop" SecMain
  SectionIn RO
  ; An upgrade replaces the whole folder: files of the previous version must not linger.
  RMDir /r "$INSTDIR\_internal"
  SetOutPath "$INSTDIR"
  File /r "${PAYLOAD_DIR}\*.*"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  SetShellVarContext all  ; the Start menu of every user (per-machine install)
  CreateDirectory "$SMPROGRAMS\${APP}"
  CreateShortcut "$SMPROGRAMS\${APP}\${APP}.lnk" "$INSTDIR\medkd-desktop.exe" "" "$INSTDIR\medkd-desktop.exe" 0
  CreateShortcut "$SMPROGRAMS\${APP}\${APP} self-test.lnk" "$SYSDIR\cmd.exe" '/k ""$INSTDIR\medkd.exe" selftest"' "$INSTDIR\medkd-desktop.exe" 0
  CreateShortcut "$SMPROGRAMS\${APP}\Uninstall ${APP}.lnk" "$INSTDIR\uninstall.exe"

  ; "Open with" for DICOM and NIfTI files, without taking over the default program.
  WriteRegStr HKLM "Software\Classes\MedKD.Study" "" "Medical study (MedKD Desktop)"
  WriteRegStr HKLM "Software\Classes\MedKD.Study\DefaultIcon" "" "$INSTDIR\medkd-desktop.exe,0"
  WriteRegStr HKLM "Software\Classes\MedKD.Study\shell\open\command" "" '"$INSTDIR\medkd-desktop.exe" "%1"'
  WriteRegStr HKLM "Software\Classes\.dcm\OpenWithProgids" "MedKD.Study" ""
  WriteRegStr HKLM "Software\Classes\.gz\OpenWithProgids" "MedKD.Study" ""

  WriteRegStr HKLM "${UNINST_KEY}" "DisplayName" "${APP}"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINST_KEY}" "Publisher" "MedKD Desktop maintainers"
  WriteRegStr HKLM "${UNINST_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINST_KEY}" "DisplayIcon" "$INSTDIR\medkd-desktop.exe,0"
  WriteRegStr HKLM "${UNINST_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINST_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINST_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKLM "${UNINST_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "Uninstall"
  SetShellVarContext all
  Delete "$SMPROGRAMS\${APP}\*.lnk"
  RMDir "$SMPROGRAMS\${APP}"
  DeleteRegValue HKLM "Software\Classes\.dcm\OpenWithProgids" "MedKD.Study"
  DeleteRegValue HKLM "Software\Classes\.gz\OpenWithProgids" "MedKD.Study"
  DeleteRegKey HKLM "Software\Classes\MedKD.Study"
  DeleteRegKey HKLM "${UNINST_KEY}"
  ; The install folder only: each user's settings, audit log and models stay in their profile.
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\medkd-desktop.exe"
  Delete "$INSTDIR\medkd.exe"
  Delete "$INSTDIR\*.json"
  Delete "$INSTDIR\*.png"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
SectionEnd
